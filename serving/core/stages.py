"""The chunk-level prompt and decode stages that Ray Serve replicates.

`BuildStage` and `DecodeStage` are plain classes over `PromptBuilder` and `Decoder` (one
answer's parse, kept here so that a request's decode reads in one file): they take and
return lists so that one call carries a whole chunk of a batch, and they serve raw prompts
(tokenised here, never in the engine) beside task prompts. `BuildStage` checks every task
prompt's inputs once, with `serving.core.validation.validate_inputs`; its `build_ranked`
builds the bulk job's one-cell prompts straight from ranked genes (`RankedPrompts`). The
gateway calls them in-process or as Ray Serve deployments; the bulk job calls the same
classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.core.errors import BatchItemError, C2SError, InvalidRequest, PromptTooLong
from serving.core.prompt_builder import BuiltPrompt, PromptBuilder, read_model_genes
from serving.core.requests import (
    DecodedResult,
    DecodeRequest,
    PreparedPrompt,
    PromptRequest,
    RankedPromptRequest,
)
from serving.core.tasks import default_registry
from serving.core.tasks.inputs import TaskInput
from serving.core.tasks.registry import TaskRegistry
from serving.core.tasks.results import TaskResult
from serving.core.tasks.spec import TaskSpec
from serving.core.validation import ModelChecks, validate_inputs
from serving.engine.params import GenerationParams
from tokenizer_ext.inverse import RankExpressionFit
from tokenizer_ext.ranking import RankedCells
from tokenizer_ext.templates import SENTENCE_FIELDS
from tokenizer_ext.text_encoder import TextEncoder
from tokenizer_ext.vocab import GeneVocabulary, ensembl_mask

#: a checkpoint's fitted inverse transform (C2S's slope and intercept), if it has one
EXPRESSION_FIT_FILE = "expression_fit.json"
#: vLLM's OpenAI server defaults for raw completions
RAW_DEFAULTS = GenerationParams(max_tokens=16, temperature=1.0)
#: answers at most this long whose parsed result is flat (a label) are parsed once each
SHORT_ANSWER_CHARS = 200
SHORT_ANSWERS_KEPT = 4096


class BuildStage:
    """Builds chunks of prompts with a `PromptBuilder`.

    Parameters
    ----------
    builder
        The prompt builder (tokenizer, registry, context length).
    vocabulary
        The genes the checkpoint lists, if it lists them; cells made mostly of other
        words are refused.
    """

    def __init__(self, builder: PromptBuilder, vocabulary: frozenset[str] | None = None) -> None:
        self.builder = builder
        # every prompt's inputs are checked once, against this checkpoint (`validate_inputs`)
        self.checks = ModelChecks(vocabulary)
        # the last dataset's ranked-prompt tables (a job reads one dataset)
        self._ranked: dict[GeneVocabulary, Any] = {}

    @classmethod
    def from_model(cls, model_dir: str | Path, **kwargs: Any) -> BuildStage:
        genes = read_model_genes(model_dir)
        vocabulary = frozenset(g.upper() for g in genes) if genes else None
        return cls(PromptBuilder.from_model(model_dir, **kwargs), vocabulary)

    def build(self, jobs: Sequence[PromptRequest], offset: int = 0) -> list[PreparedPrompt]:
        """Build every job, in order; the first invalid one raises `BatchItemError`
        (or its own error when the chunk holds one job).

        One-cell prompts of a fixed template are validated one by one, then built together
        (`PromptBuilder.iter_build_cells`); the others one by one, in order.
        """
        prepared: list[PreparedPrompt | None] = [None] * len(jobs)
        batches: dict[tuple[str, int], list[tuple[int, TaskInput]]] = {}
        failed: list[tuple[int, C2SError]] = []
        for i, job in enumerate(jobs):
            try:
                if job.task is not None and self.builder.batches_cells(job.task, job.template):
                    batch = batches.setdefault((job.task, int(job.template)), [])
                    batch.append((i, self._validated(job)))
                else:
                    prepared[i] = self._build_one(job)
            except C2SError as exc:
                failed.append((i, exc))
                break
        for (task, template), items in batches.items():
            built = self.builder.iter_build_cells(task, [data for _, data in items], template)
            try:
                for (i, _), prompt in zip(items, built, strict=False):
                    prepared[i] = _prepared(prompt)
            except C2SError as exc:
                failed.append((next(i for i, _ in items if prepared[i] is None), exc))
        if failed:
            i, exc = min(failed, key=lambda failure: failure[0])
            if len(jobs) == 1 and offset == 0:
                raise exc
            raise BatchItemError(offset + i, exc) from None
        return prepared

    def build_ranked(self, request: RankedPromptRequest, offset: int = 0) -> list[PreparedPrompt]:
        """The request's prompts, the same as `build` of the cells' sentences; built from
        the genes' cached ids when `RankedPrompts` can, else from the
        sentences."""
        task, vocabulary = request.task, request.vocabulary
        prompts = self._ranked.get(vocabulary)
        if prompts is None:
            self._ranked = {vocabulary: RankedPrompts(self.builder, vocabulary, self.checks)}
            prompts = self._ranked[vocabulary]
        built = prompts.build(task, request.cells, request.fields, request.templates)
        if built is not None:
            return [PreparedPrompt(ids, params, task, t) for ids, params, t in built]
        jobs = [
            PromptRequest(task, inputs, template=t)
            for inputs, t in zip(request.sentence_inputs(), request.templates, strict=True)
        ]
        return self.build(jobs, offset)

    def _validated(self, job: PromptRequest) -> TaskInput:
        return validate_inputs(self.builder.registry.get(job.task), job.inputs or {}, self.checks)

    def _build_one(self, job: PromptRequest) -> PreparedPrompt:
        if job.task is None:
            return self._raw(job.raw_prompt)
        return _prepared(self.builder.build_valid(job.task, self._validated(job), job.template))

    def _raw(self, prompt: str | tuple[int, ...] | None) -> PreparedPrompt:
        if prompt is None or len(prompt) == 0:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        ids = tuple(prompt) if not isinstance(prompt, str) else tuple(self._encode(prompt))
        limit = self.builder.max_model_len
        if len(ids) >= limit:
            raise PromptTooLong(len(ids), limit)
        return PreparedPrompt(ids, RAW_DEFAULTS)

    def encode_texts(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """Token ids of plain texts, such as a task's answers (label scoring): the text
        alone, no special tokens, as training encodes answers."""
        return [tuple(self.builder.encoder.encode(text)) for text in texts]

    def _encode(self, text: str) -> list[int]:
        ids = self.builder.encoder.encode(text)
        if not ids:
            raise InvalidRequest("The prompt has no tokens.", param="prompt")
        return ids


def _prepared(built: BuiltPrompt) -> PreparedPrompt:
    return PreparedPrompt(built.token_ids, built.params, built.task, built.template_index)


class RankedPrompts:
    """One-cell prompts straight from one dataset's ranked genes: the bulk job's path.

    Each dataset gene is tokenised once (the prompt builder's gene cache), and every
    prompt's ids are gathered from the cache's flat table in one go: no cell sentence is
    made. The prompts equal `BuildStage.build`'s for the same cells' sentences, id for id
    (tests compare both). Where this path cannot decide (a cell the gene checks would
    refuse, a prompt too long, a dataset larger than the cache), `build` returns ``None``
    and the caller builds from sentences, which raises the checks' own errors.

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


class Decoder:
    """Parses generated text with each task's parser: a task's answer -> its typed result.

    Parameters
    ----------
    vocabulary
        Gene symbols that count as valid genes (compared upper-cased); ``None`` counts
        every generated word as a gene.
    registry
        The tasks; the built-in twelve by default.
    """

    def __init__(
        self, vocabulary: Iterable[str] | None = None, *, registry: TaskRegistry | None = None
    ) -> None:
        self.vocabulary = None if vocabulary is None else frozenset(g.upper() for g in vocabulary)
        self.registry = registry or default_registry()

    @classmethod
    def from_model(cls, model_dir: str | Path, *, registry: TaskRegistry | None = None) -> Decoder:
        """A decoder that validates genes against the genes a model directory lists."""
        return cls(read_model_genes(model_dir), registry=registry)

    def decode(self, task: str | TaskSpec, text: str) -> TaskResult:
        """The typed result of one generated answer (the text after the prompt)."""
        spec = task if isinstance(task, TaskSpec) else self.registry.get(task)
        return spec.parser(text, self.vocabulary)


class DecodeStage:
    """Parses chunks of answers with a `Decoder`, and renders tokens for logprobs."""

    def __init__(
        self, decoder: Decoder, encoder: TextEncoder, fit: RankExpressionFit | None = None
    ) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.fit = fit
        self._flat: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def from_model(cls, model_dir: str | Path) -> DecodeStage:
        """A stage for a checkpoint directory; its ``expression_fit.json`` (slope and
        intercept of the C2S inverse transform, fitted on its training data) enables
        expression reconstruction."""
        model_dir = Path(model_dir)
        fit_file = model_dir / EXPRESSION_FIT_FILE
        fit = None
        if fit_file.is_file():
            values = json.loads(fit_file.read_text("utf-8"))
            fit = RankExpressionFit(slope=values["slope"], intercept=values["intercept"])
        return cls(
            Decoder.from_model(model_dir), TextEncoder.load(model_dir / "tokenizer.json"), fit
        )

    def decode(self, jobs: Sequence[DecodeRequest]) -> list[DecodedResult]:
        return [self._decode_one(job) for job in jobs]

    def _decode_one(self, job: DecodeRequest) -> DecodedResult:
        result = None
        if job.task is not None:
            result = self._parsed(job.task, job.text)
            if job.reconstruct_expression:
                result = self._with_expression(result)
        tokens = {t: self.encoder.decode([t]) for t in set(job.token_ids)}
        return DecodedResult(result, tokens)

    def _parsed(self, task: str, text: str) -> dict[str, Any]:
        """The parsed answer as a dict. Flat results of short answers (labels) are
        parsed once each and copied: a bulk run meets a few labels millions of times."""
        key = (task, text)
        parsed = self._flat.get(key)
        if parsed is not None:
            return dict(parsed)
        parsed = self.decoder.decode(task, text).model_dump()
        if len(text) <= SHORT_ANSWER_CHARS and not any(
            isinstance(v, list | dict) for v in parsed.values()
        ):
            if len(self._flat) >= SHORT_ANSWERS_KEPT:
                self._flat.clear()
            self._flat[key] = dict(parsed)
        return parsed

    def _with_expression(self, result: dict[str, Any]) -> dict[str, Any]:
        """Add C2S's rank-to-expression values beside every generated gene list."""
        if self.fit is None:
            raise InvalidRequest(
                f"This model ships no {EXPRESSION_FIT_FILE} (slope and intercept of the "
                "inverse transform), so expression cannot be reconstructed.",
                param="reconstruct_expression",
            )
        if result["kind"] == "genes":
            return {**result, "expression": self._expression(result["genes"])}
        if result["kind"] == "cells":
            cells = [{**c, "expression": self._expression(c["genes"])} for c in result["cells"]]
            return {**result, "cells": cells}
        raise InvalidRequest(
            f"Results of kind {result['kind']!r} hold no generated cells to reconstruct.",
            param="reconstruct_expression",
        )

    def _expression(self, genes: list[str]) -> list[float]:
        return [round(float(v), 6) for v in self.fit.predict(range(len(genes)))]
