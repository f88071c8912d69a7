"""Gene budgets for the model context (8192 tokens for C2S-Pythia-410m).

A prompt's length depends on how many genes each cell contributes and on how
many tokens each gene symbol takes (about 3.3 for Pythia), so the largest gene
count that fits is found on the actual cells, with exact token counts. Every cell
of a prompt gets the same count, as in training, and the count stays inside the
ranges the checkpoint was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenizer_ext.errors import PromptBudgetError, TemplateError, TrainedRangeError
from tokenizer_ext.prompt_ids import PromptEncoder, PromptIds
from tokenizer_ext.templates import PromptTemplate

DEFAULT_MAX_MODEL_LEN = 8192


@dataclass(frozen=True)
class TrainedRanges:
    """Cell and gene counts the checkpoint saw in training (model card).

    Attributes
    ----------
    single_cell_genes : tuple of int
        Genes of a single-cell prompt, inclusive.
    multi_cell_cells : tuple of int
        Cells of a multi-cell prompt, inclusive.
    multi_cell_genes : tuple of int
        Genes per cell of a multi-cell prompt, inclusive.
    """

    single_cell_genes: tuple[int, int] = (100, 2048)
    multi_cell_cells: tuple[int, int] = (5, 20)
    multi_cell_genes: tuple[int, int] = (100, 400)

    def gene_range(self, multi_cell: bool) -> tuple[int, int]:
        """Allowed genes per cell for a single- or multi-cell prompt."""
        return self.multi_cell_genes if multi_cell else self.single_cell_genes

    def check_cells(self, n_cells: int, multi_cell: bool) -> None:
        """Raise :class:`TrainedRangeError` for a cell count outside training."""
        low, high = self.multi_cell_cells if multi_cell else (1, 1)
        if not low <= n_cells <= high:
            raise TrainedRangeError(
                f"{n_cells} cells per prompt is outside the trained range {low}-{high}"
            )

    def check_genes(self, genes_per_cell: int, multi_cell: bool) -> None:
        """Raise :class:`TrainedRangeError` for a gene count outside training."""
        low, high = self.gene_range(multi_cell)
        if not low <= genes_per_cell <= high:
            kind = "multi-cell" if multi_cell else "single-cell"
            raise TrainedRangeError(
                f"{genes_per_cell} genes per cell is outside the trained {kind} range {low}-{high}"
            )


C2S_TRAINED_RANGES = TrainedRanges()


def _budget_error(
    reason: str,
    *,
    needed_tokens: int,
    reserved_output_tokens: int,
    max_model_len: int,
    n_cells: int,
    genes_per_cell: int | None,
) -> PromptBudgetError:
    return PromptBudgetError(
        reason,
        needed_tokens=needed_tokens,
        limit=max_model_len - reserved_output_tokens,
        max_model_len=max_model_len,
        reserved_output_tokens=reserved_output_tokens,
        n_cells=n_cells,
        genes_per_cell=genes_per_cell,
    )


@dataclass(frozen=True)
class GeneBudget:
    """The gene count chosen for a prompt, with its exact token count.

    Attributes
    ----------
    genes_per_cell : int
        Genes asked of every cell (the ``num_genes`` of the template).
    prompt : PromptIds
        The prompt's ids at that count.
    limit : int
        Tokens available to the prompt (``max_model_len - reserved_output_tokens``).
    """

    genes_per_cell: int
    prompt: PromptIds
    limit: int

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt."""
        return self.prompt.n_tokens


def fit_genes_per_cell(
    encoder: PromptEncoder,
    template: str | PromptTemplate,
    cells: Sequence[Sequence[str] | Sequence[int] | np.ndarray],
    *,
    reserved_output_tokens: int,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    genes_per_cell: int | None = None,
    ranges: TrainedRanges | None = C2S_TRAINED_RANGES,
    **fields: Any,
) -> GeneBudget:
    """The largest common gene count per cell whose prompt fits the context.

    The count is searched between the trained range's bounds, and not above the
    longest cell's gene count; shorter cells contribute all their genes.

    Parameters
    ----------
    encoder : PromptEncoder
        Renders prompts to ids (exact token counts).
    template : str or PromptTemplate
        The task's ``model_input`` template.
    cells : sequence
        Every cell's full ranked genes (symbols or word indices), longest first
        is not required.
    reserved_output_tokens : int
        Tokens kept free for the answer.
    max_model_len : int
        The model's context length.
    genes_per_cell : int, optional
        A requested count: checked (range and fit) instead of searched.
    ranges : TrainedRanges or None
        Trained ranges to respect; ``None`` allows any count from 1.
    **fields
        Other placeholder values (``organism``...); ``num_genes`` is set here.

    Returns
    -------
    GeneBudget

    Raises
    ------
    PromptBudgetError
        When even the smallest allowed count does not fit, or the requested one does not.
    TrainedRangeError
        When the cell count, or a requested gene count, is outside ``ranges``.
    """
    if "num_genes" in fields:
        raise TemplateError("num_genes is chosen by the budget; pass genes_per_cell to fix it")
    parsed = encoder.template(template)
    limit = max_model_len - reserved_output_tokens
    multi = parsed.is_multi_cell
    if ranges is not None and cells:
        ranges.check_cells(len(cells), multi)
    low, high = ranges.gene_range(multi) if ranges is not None else (1, max_model_len)

    def prompt_at(k: int) -> PromptIds:
        return encoder.encode(parsed, [c[:k] for c in cells], num_genes=k, **fields)

    def error(reason: str, prompt: PromptIds, k: int | None) -> PromptBudgetError:
        return _budget_error(
            reason,
            needed_tokens=prompt.n_tokens,
            reserved_output_tokens=reserved_output_tokens,
            max_model_len=max_model_len,
            n_cells=len(cells),
            genes_per_cell=k,
        )

    if not cells:
        prompt = encoder.encode(parsed, [], **fields)
        if prompt.n_tokens > limit:
            raise error("prompt does not fit the context", prompt, None)
        return GeneBudget(0, prompt, limit)
    if genes_per_cell is not None:
        if ranges is not None:
            ranges.check_genes(genes_per_cell, multi)
        prompt = prompt_at(genes_per_cell)
        if prompt.n_tokens > limit:
            raise error(f"{genes_per_cell} genes per cell do not fit", prompt, genes_per_cell)
        return GeneBudget(genes_per_cell, prompt, limit)
    smallest = prompt_at(low)
    if smallest.n_tokens > limit:
        raise error(f"even {low} genes per cell (the minimum) do not fit", smallest, low)
    best_k, best = low, smallest
    # Asking for more genes than the longest cell has would only change the stated count.
    longest = max(len(c) for c in cells)
    # Longer cells never shorten a prompt (up to the digits of num_genes): bisect.
    lo, hi = low + 1, min(high, max(longest, low))
    while lo <= hi:
        mid = (lo + hi) // 2
        prompt = prompt_at(mid)
        if prompt.n_tokens <= limit:
            best_k, best, lo = mid, prompt, mid + 1
        else:
            hi = mid - 1
    return GeneBudget(best_k, best, limit)


def estimate_genes_per_cell(
    encoder: PromptEncoder,
    template: str | PromptTemplate,
    n_cells: int,
    *,
    reserved_output_tokens: int,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    tokens_per_gene: float | None = None,
    ranges: TrainedRanges | None = C2S_TRAINED_RANGES,
    **fields: Any,
) -> int:
    """Largest gene count per cell expected to fit, before the cells are known.

    Uses the fixed text's exact tokens plus ``tokens_per_gene`` per gene (default:
    the vocabulary's 95th percentile, so most real cells fit). Confirm with
    :func:`fit_genes_per_cell` once the cells are known.

    Raises
    ------
    PromptBudgetError
        When the range minimum is not expected to fit.
    """
    parsed = encoder.template(template)
    multi = parsed.is_multi_cell
    if ranges is not None:
        ranges.check_cells(n_cells, multi)
    low, high = ranges.gene_range(multi) if ranges is not None else (1, max_model_len)
    per_gene = tokens_per_gene or float(np.percentile(encoder.token_cache.token_counts, 95))
    values = parsed.resolve_fields([[""] * high] * n_cells, fields)
    fixed = sum(len(encoder.text_ids(gap)) for gap in parsed.text_gaps(n_cells, values))
    limit = max_model_len - reserved_output_tokens
    k = min(high, math.floor((limit - fixed) / (n_cells * per_gene)))
    if k < low:
        raise _budget_error(
            f"even {low} genes per cell (the minimum) are not expected to fit",
            needed_tokens=fixed + math.ceil(n_cells * low * per_gene),
            reserved_output_tokens=reserved_output_tokens,
            max_model_len=max_model_len,
            n_cells=n_cells,
            genes_per_cell=low,
        )
    return k


def check_prompt_fits(
    n_tokens: int,
    *,
    reserved_output_tokens: int,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    n_cells: int = 1,
    genes_per_cell: int | None = None,
) -> None:
    """Raise :class:`PromptBudgetError` when a prompt of ``n_tokens`` does not fit."""
    if n_tokens > max_model_len - reserved_output_tokens:
        raise _budget_error(
            "prompt does not fit the context",
            needed_tokens=n_tokens,
            reserved_output_tokens=reserved_output_tokens,
            max_model_len=max_model_len,
            n_cells=n_cells,
            genes_per_cell=genes_per_cell,
        )


def estimate_sentence_tokens(
    encoder: PromptEncoder, genes_per_cell: int, n_cells: int = 1, *, quantile: float = 95
) -> int:
    """Tokens to reserve for generating ``n_cells`` sentences of ``genes_per_cell`` genes.

    Uses the ``quantile`` of per-gene token counts, plus ``"Cell i:\\n"`` and
    ``".\\n"`` per cell for multi-cell output and one token for the final ``"."``.
    """
    per_gene = float(np.percentile(encoder.token_cache.token_counts, quantile))
    per_cell_text = len(encoder.text_ids(f"Cell {n_cells}:\n")) + 1 if n_cells > 1 else 0
    return math.ceil(n_cells * (genes_per_cell * per_gene + per_cell_text)) + 1
