"""One-cell prompts built straight from a dataset's ranked genes: the bulk job's path.

The job's reader ranks a chunk of rows into word indices of the dataset's vocabulary
(`tokenizer_ext.RankedCells`). `RankedPrompts` maps those onto the prompt builder's gene
cache (each gene of the dataset tokenised once, when the dataset is first seen) and
gathers every prompt's ids from the cache's flat table in one go: no cell sentence is
made and no gene is touched in Python. The prompts equal `BuildStage.build`'s for the
same cells' sentences, id for id (tests compare both). For what this path does not
decide itself (a cell the gene checks would refuse, a prompt too long, a dataset larger
than the gene cache), `build` returns ``None`` and the caller builds from sentences,
which raises the checks' own errors at the right index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.core.errors import C2SError
from serving.core.prompt_builder import PromptBuilder
from serving.core.tasks.inputs import TaskInput
from serving.core.validation import ModelChecks, validate_inputs
from serving.engine.params import GenerationParams
from tokenizer_ext import GeneVocabulary, RankedCells
from tokenizer_ext.templates import SENTENCE_FIELDS
from tokenizer_ext.vocab import ensembl_mask


class RankedPrompts:
    """Prompts of one dataset's ranked cells.

    Parameters
    ----------
    builder
        The prompt builder (tokenizer, gene cache, context).
    vocabulary
        The dataset's genes (the words the ranked cells index).
    checks
        The checkpoint's checks (`serving.core.validation`): a cell mostly outside its
        genes is left to the sentence path, which refuses it.
    """

    def __init__(
        self,
        builder: PromptBuilder,
        vocabulary: GeneVocabulary,
        checks: ModelChecks,
    ) -> None:
        self.builder = builder
        self.vocabulary = vocabulary
        # each dataset gene tokenised once, here; None when the cache cannot hold them all
        self.cache_words = builder.gene_words(vocabulary.symbols)
        symbols = vocabulary.symbols
        self.ensembl = ensembl_mask(symbols)
        self.checks = checks
        model_genes = checks.model_genes
        if model_genes is None:
            self.unknown = np.zeros(len(symbols), dtype=bool)
        else:
            self.unknown = np.fromiter((s not in model_genes for s in symbols), bool, len(symbols))
        self.any_flagged = bool(self.ensembl.any() or self.unknown.any())
        self._params: dict[tuple[str, int], GenerationParams] = {}

    def build(
        self,
        task: str,
        cells: RankedCells,
        fields: Mapping[str, Any],
        templates: Sequence[int],
    ) -> list[tuple[tuple[int, ...], GenerationParams, int]] | None:
        """``(token ids, params, template index)`` per cell, or ``None`` (see the module)."""
        builder = self.builder
        if self.cache_words is None or not cells.lengths.all() or self._refused(cells):
            return None
        if not all(builder.batches_cells(task, t) for t in set(templates)):
            return None
        spec = builder.registry.get(task)
        try:
            sample = self._sample(task, cells, fields)
        except C2SError:
            return None
        cells = cells.truncate(getattr(sample, "n_genes", None))
        fixed = {k: v for k, v in sample.template_fields().items() if k not in SENTENCE_FIELDS}
        words = RankedCells(self.cache_words[cells.words], cells.offsets)
        templates = np.asarray(templates, dtype=np.int64)
        out: list = [None] * len(cells)
        wanted = spec.sampling.max_tokens(sample.output_size(), builder.tokens_per_gene)
        for template in np.unique(templates).tolist():
            rows = np.flatnonzero(templates == template)
            text = spec.templates.prompt_template(template)
            batch = builder.prompt_encoder.encode_batch(text, words.select(rows), **fixed)
            if int(batch.n_tokens.max()) >= builder.max_model_len:
                return None
            for row, ids in zip(rows.tolist(), batch.to_tuples(), strict=True):
                max_tokens = min(wanted, builder.max_model_len - len(ids))
                out[row] = (ids, self._params_for(spec, max_tokens), template)
        return out

    def _refused(self, cells: RankedCells) -> bool:
        """Whether a cell may fail the gene checks (Ensembl ids, genes the model lacks)."""
        if not self.any_flagged:  # no such gene in the dataset: no cell can fail
            return False
        lengths = cells.lengths
        row_of = np.repeat(np.arange(len(cells)), lengths)
        for flags in (self.ensembl, self.unknown):
            counts = np.bincount(row_of, weights=flags[cells.words], minlength=len(cells))
            if ((counts > 0) & (2 * counts >= lengths)).any():
                return True
        return False

    def _sample(self, task: str, cells: RankedCells, fields: Mapping[str, Any]) -> TaskInput:
        """The first cell validated as the sentence path would (`validate_inputs`): the
        checks on the fields (the same for every cell) and the template's other values.
        The other cells' genes are screened by `_refused`, which decides nothing itself."""
        first = " ".join(self.vocabulary.decode(cells.row(0).tolist()))
        spec = self.builder.registry.get(task)
        return validate_inputs(spec, {**fields, "cell": first}, self.checks)

    def _params_for(self, spec, max_tokens: int) -> GenerationParams:
        key = (spec.name, max_tokens)
        params = self._params.get(key)
        if params is None:
            params = self._params[key] = spec.sampling.params(max_tokens)
        return params
