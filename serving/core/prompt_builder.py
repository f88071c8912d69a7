"""`PromptBuilder`: (task, input, template choice) -> exact prompt text and token ids.

A plain class with no Ray or HTTP in it: the gateway, the bulk job and the demo's training
script all build prompts through it, so that every path sees the same text and ids.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from serving.core.errors import InvalidTaskInput, PromptTooLong
from serving.core.tasks import default_registry
from serving.core.tasks.inputs import TaskInput
from serving.core.tasks.registry import TaskRegistry
from serving.core.tasks.spec import TaskSpec
from serving.core.tasks.templates import (
    C2S_TEMPLATE_SEED,
    TemplateChoice,
    TemplatePicker,
)
from serving.core.validation import validate_inputs
from serving.engine.params import GenerationParams
from tokenizer_ext.templates import CELL_SENTENCE, SENTENCE_FIELDS, TEMPLATE_FIELDS, placeholders

#: a model directory may list its genes here, one per line (the demo checkpoint does)
GENES_FILE = "gene_vocabulary.txt"
MAX_EXTRA_GENES = 100_000


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    """One rendered, tokenised and budget-checked prompt.

    Attributes
    ----------
    task
        The task's name.
    template_index
        The prompt variant used.
    text
        The exact prompt text (no special tokens, no trailing space).
    token_ids
        Its token ids.
    max_tokens
        The task's default answer budget, clipped to the room the context leaves.
    params
        The task's default sampling settings with ``max_tokens``.
    """

    task: str
    template_index: int
    text: str
    token_ids: tuple[int, ...]
    max_tokens: int
    params: GenerationParams

    @property
    def prompt_tokens(self) -> int:
        return len(self.token_ids)


def reference_genes() -> tuple[str, ...]:
    """Gene symbols to measure tokens per gene on when a model lists none (pbmc68k's)."""
    text = (resources.files("serving.core.tasks") / "reference_genes.json").read_text("utf-8")
    return tuple(json.loads(text)["genes"])


def read_model_genes(model_dir: str | Path) -> tuple[str, ...] | None:
    """The genes a model directory lists in `GENES_FILE`, or ``None``."""
    path = Path(model_dir) / GENES_FILE
    return tuple(path.read_text("utf-8").split()) if path.is_file() else None


def context_length(model_dir: str | Path) -> int:
    """A checkpoint's context: ``max_position_embeddings`` of its ``config.json``, or the
    ``model_max_length`` of its ``tokenizer_config.json`` for a tokenizer-only directory."""
    model_dir = Path(model_dir)
    config = model_dir / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text("utf-8"))["max_position_embeddings"])
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text("utf-8"))
    return int(tokenizer_config["model_max_length"])


class PromptBuilder:
    """Renders task prompts to text and token ids and checks them against the context.

    Parameters
    ----------
    tokenizer
        The model's tokenizer: a ``tokenizers.Tokenizer``, a ``tokenizer.json`` path or a
        fast transformers tokenizer.
    max_model_len
        The context the engine serves with; a prompt must leave one token free.
    registry
        The tasks to serve; the built-in twelve by default.
    genes
        Gene symbols to measure the tokenizer's tokens per gene on, which sizes
        ``max_tokens`` of gene-generating tasks; pbmc68k's genes by default.
    template_seed
        Seed of the random template mode (C2S uses 42).
    """

    def __init__(
        self,
        tokenizer: object,
        max_model_len: int,
        *,
        registry: TaskRegistry | None = None,
        genes: Sequence[str] | None = None,
        template_seed: int = C2S_TEMPLATE_SEED,
    ) -> None:
        from tokenizer_ext import GeneTokenCache, PromptEncoder, TextEncoder

        self.encoder = TextEncoder.load(tokenizer)
        self.max_model_len = max_model_len
        self.registry = registry or default_registry()
        self.gene_cache = GeneTokenCache(self.encoder, list(genes or reference_genes()))
        self.prompt_encoder = PromptEncoder(self.gene_cache)
        self.tokens_per_gene = float(self.gene_cache.token_counts.mean())
        # Genes met in prompts join the cache up to this bound (memory stays bounded
        # whatever clients send).
        self.max_cached_genes = len(self.gene_cache) + MAX_EXTRA_GENES
        self._picker = TemplatePicker(template_seed)

    @classmethod
    def from_model(
        cls,
        model_dir: str | Path,
        *,
        max_model_len: int | None = None,
        registry: TaskRegistry | None = None,
        template_seed: int = C2S_TEMPLATE_SEED,
    ) -> PromptBuilder:
        """A builder for a local checkpoint: its tokenizer, context and gene list."""
        model_dir = Path(model_dir)
        return cls(
            model_dir / "tokenizer.json",
            max_model_len or context_length(model_dir),
            registry=registry,
            genes=read_model_genes(model_dir),
            template_seed=template_seed,
        )

    def build(
        self, task: str | TaskSpec, payload: Mapping | TaskInput, template: TemplateChoice = 0
    ) -> BuiltPrompt:
        """Validate (the task's input model alone: `validate_inputs` without model checks),
        render, tokenise and budget-check one prompt.

        Raises
        ------
        UnknownTask, InvalidTaskInput, PromptTooLong
        """
        spec = self._spec(task)
        return self.build_valid(spec, validate_inputs(spec, payload), template)

    def build_valid(
        self, task: str | TaskSpec, data: TaskInput, template: TemplateChoice = 0
    ) -> BuiltPrompt:
        """`build` of inputs that `validate_inputs` returned: render, tokenise, budget-check."""
        spec = self._spec(task)
        index = self._pick(spec, template)
        text = self._render(spec, data, index)
        ids = self._token_ids(spec.templates.prompt_template(index), data, text)
        return self._built(spec, data, index, text, ids)

    def batches_cells(self, task: str | TaskSpec, template: TemplateChoice) -> bool:
        """Whether `iter_build_cells` can build this task's prompts with this template: a
        fixed template of C2S's placeholders around one ``{cell_sentence}``."""
        if isinstance(template, str):  # "random": each prompt draws its own variant
            return False
        spec = self._spec(task)
        try:
            text = spec.templates.prompt_template(int(template))
        except IndexError:
            return False
        fields = placeholders(text)
        return CELL_SENTENCE in fields and fields <= set(TEMPLATE_FIELDS)

    def iter_build_cells(
        self, task: str | TaskSpec, inputs: Sequence[TaskInput], template: int
    ) -> Iterator[BuiltPrompt]:
        """`build` of many validated one-cell inputs, their token ids gathered in one go.

        For a template `batches_cells` accepts. The prompts equal `build`'s, id for id
        (tests compare both); they come in order, and the first one too long for the
        context raises `PromptTooLong` there, so a caller knows which input it was.
        """
        from tokenizer_ext import RankedCells

        spec = self._spec(task)
        index = self._pick(spec, template)
        template_text = spec.templates.prompt_template(index)
        groups: dict[tuple, list[int]] = {}
        cells = [data.prompt_cells()[0] for data in inputs]
        fields = []
        for position, data in enumerate(inputs):
            values = data.template_fields()
            fixed = {k: v for k, v in values.items() if k not in SENTENCE_FIELDS}
            fields.append((values, fixed))
            groups.setdefault(tuple(sorted(fixed.items())), []).append(position)
        ids: list[tuple[int, ...] | None] = [None] * len(inputs)
        if self._cache_genes(cells):
            vocabulary = self.gene_cache.vocabulary
            for positions in groups.values():
                flat = [gene for p in positions for gene in cells[p]]
                lengths = np.fromiter((len(cells[p]) for p in positions), np.int64, len(positions))
                offsets = np.zeros(len(positions) + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                ranked = RankedCells(vocabulary.encode_upper(flat), offsets)
                batch = self.prompt_encoder.encode_batch(
                    template_text, ranked, **fields[positions[0]][1]
                )
                for p, prompt_ids in zip(positions, batch.to_tuples(), strict=True):
                    ids[p] = prompt_ids
        for position, data in enumerate(inputs):
            text = spec.templates.render_prompt(index, fields[position][0])
            prompt_ids = ids[position]
            if prompt_ids is None:  # the gene cache is full: tokenise the text
                prompt_ids = tuple(self.encoder.encode(text))
            yield self._built(spec, data, index, text, prompt_ids)

    def _built(
        self, spec: TaskSpec, data: TaskInput, index: int, text: str, ids: tuple[int, ...]
    ) -> BuiltPrompt:
        """The prompt, budget-checked, with the task's sampling; raises `PromptTooLong`."""
        if len(ids) >= self.max_model_len:
            raise PromptTooLong(len(ids), self.max_model_len, detail=_shorten_hint(data))
        wanted = spec.sampling.max_tokens(data.output_size(), self.tokens_per_gene)
        max_tokens = min(wanted, self.max_model_len - len(ids))
        return BuiltPrompt(
            task=spec.name,
            template_index=index,
            text=text,
            token_ids=ids,
            max_tokens=max_tokens,
            params=spec.sampling.params(max_tokens),
        )

    def _token_ids(self, template: str, data: TaskInput, text: str) -> tuple[int, ...]:
        """Ids from the per-gene cache when it can assemble them, else by tokenising ``text``.

        The cache covers C2S's placeholders and the genes it was built with; both paths
        give the same ids (tokenizer_ext checks the assembly against full tokenisation).
        """
        cells = data.prompt_cells()
        if (
            cells is None
            or not placeholders(template) <= set(TEMPLATE_FIELDS)
            or not self._cache_genes(cells)
        ):
            return tuple(self.encoder.encode(text))
        fields = {k: v for k, v in data.template_fields().items() if k not in SENTENCE_FIELDS}
        return tuple(self.prompt_encoder.encode(template, cells, **fields).ids)

    def gene_words(self, symbols: Sequence[str]) -> np.ndarray | None:
        """The gene cache's word of each upper-cased symbol (a dataset's genes, each
        tokenised once here), or ``None`` when the cache has no room for them."""
        if not self._cache_genes([symbols]):
            return None
        return self.gene_cache.vocabulary.encode_upper(symbols)

    def _cache_genes(self, cells: Sequence[Sequence[str]]) -> bool:
        """Whether every gene is cached, caching those outside the model's gene list while
        the cache has room (a wide atlas's genes are then tokenised once, not per cell)."""
        vocabulary = self.gene_cache.vocabulary
        unknown = list(
            dict.fromkeys(vocabulary.unknown_upper(itertools.chain.from_iterable(cells)))
        )
        if not unknown:
            return True
        if len(vocabulary) + len(unknown) > self.max_cached_genes:
            return False
        self.prompt_encoder.add_genes(unknown)
        return True

    @staticmethod
    def _render(spec: TaskSpec, data: TaskInput, index: int) -> str:
        try:
            return spec.render_prompt(data, index)
        except ValueError as exc:  # a template format spec that does not fit its value
            raise InvalidTaskInput(spec.name, str(exc)) from None

    def _spec(self, task: str | TaskSpec) -> TaskSpec:
        return task if isinstance(task, TaskSpec) else self.registry.get(task)

    def _pick(self, spec: TaskSpec, template: TemplateChoice) -> int:
        index = self._picker.pick(template, len(spec.templates))
        try:
            spec.templates.prompt_template(index)
        except IndexError as exc:
            raise InvalidTaskInput(spec.name, str(exc), param="template_index") from None
        return index


def _shorten_hint(data: TaskInput) -> str:
    if hasattr(data, "n_genes"):
        return f"lower n_genes (now {data.n_genes}) or send fewer cells"
    return "send less text"
