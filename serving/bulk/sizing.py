"""Multi-cell group size: the most cells per prompt that fit the model's context.

The bound is the dataset's worst case: every cell made of the genes that take the most
tokens, rendered with the task's longest template, plus the answer's token budget. Any
real group of that size then fits. Without the model's tokenizer (a remote gateway and no
local copy) a conservative tokens-per-gene figure stands in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.core.tasks.registry import TaskRegistry
from serving.core.tasks.spec import TaskSpec

#: tokens per gene assumed without a tokenizer (Pythia averages 3.3, few genes exceed 8)
FALLBACK_TOKENS_PER_GENE = 8
#: template text and cell headers assumed without a tokenizer
FALLBACK_FIXED_TOKENS = 256
FALLBACK_TOKENS_PER_CELL = 8
#: a cell's first gene follows "Cell i:\n" rather than a space and may take more tokens
MARGIN_PER_CELL = 2


@dataclass(frozen=True)
class GroupSize:
    """The chosen size and the worst-case prompt it was checked with.

    Attributes
    ----------
    cells
        Cells per group.
    worst_prompt_tokens
        Prompt tokens of the worst case at that size.
    reserved_output_tokens
        The answer's token budget kept free.
    max_model_len
        The context it must fit.
    exact
        Whether the model's tokenizer counted the tokens.
    """

    cells: int
    worst_prompt_tokens: int
    reserved_output_tokens: int
    max_model_len: int
    exact: bool


def fit_group_size(
    prompt_tokens: Callable[[int], int],
    reserved_tokens: Callable[[int], int],
    max_model_len: int,
    max_cells: int,
    *,
    exact: bool,
) -> GroupSize | None:
    """The largest size up to ``max_cells`` whose worst prompt and answer fit, or ``None``."""
    for n in range(max_cells, 0, -1):
        needed, reserved = prompt_tokens(n), reserved_tokens(n)
        if needed + reserved <= max_model_len:
            return GroupSize(n, needed, reserved, max_model_len, exact)
    return None


def answer_budget(specs: Sequence[TaskSpec], n_genes: int) -> Callable[[int], int]:
    """Tokens the tasks' answers may take for a group of ``n`` cells (the largest)."""

    def reserved(n: int) -> int:
        budgets = []
        for spec in specs:
            data = spec.input_model(cells=["X"] * n, n_genes=n_genes)
            budgets.append(spec.sampling.max_tokens(data.output_size(), 0.0))
        return max(budgets)

    return reserved


def worst_prompt_counter(
    encode: Callable[[str], list[int]] | None,
    genes: Sequence[str],
    n_genes: int,
    specs: Sequence[TaskSpec],
    template: int | None,
    organism: str,
) -> Callable[[int], int]:
    """Prompt tokens of ``n`` worst-case cells under the longest template of ``specs``
    (template ``template``, or every one when ``None``)."""
    if encode is None:
        return lambda n: (
            FALLBACK_FIXED_TOKENS
            + n * (n_genes * FALLBACK_TOKENS_PER_GENE + FALLBACK_TOKENS_PER_CELL)
        )
    cost = {g: len(encode(" " + g)) for g in genes}
    heaviest = sorted(genes, key=lambda g: -cost[g])[:n_genes]
    sentence = " ".join(heaviest)

    def tokens(n: int) -> int:
        longest = 0
        for spec in specs:
            data = spec.input_model(cells=[sentence] * n, n_genes=n_genes, organism=organism)
            indices = range(len(spec.templates)) if template is None else [template]
            for index in indices:
                longest = max(longest, len(encode(spec.render_prompt(data, index))))
        return longest + n * MARGIN_PER_CELL

    return tokens


def group_specs(registry: TaskRegistry, with_tissue: bool) -> list[TaskSpec]:
    """The tasks a multi-cell run asks of every group."""
    names = ["multi_cell_type_prediction"] + (["tissue_prediction"] if with_tissue else [])
    return [registry.get(name) for name in names]
