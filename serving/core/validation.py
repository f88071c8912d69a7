"""`validate_inputs`: the one check of a prompt's task inputs.

Every prompt's inputs pass here once, before a prompt is rendered: the task's input model
(types, bounds, the cell's shape), then, for a served checkpoint (`ModelChecks`), what the
model can read (the counts it was trained on, gene symbols it knows). `BuildStage` calls it
with the checkpoint's checks for every request and bulk chunk; `PromptBuilder.build` calls it
with the schema alone, for tools that build prompts outside the model card (training, the
`c2s tasks` preview). The ranked-prompt path validates its chunk's shared fields here too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from serving.core.errors import InvalidTaskInput
from serving.core.tasks.inputs import TaskInput
from serving.core.tasks.spec import TaskGroup, TaskSpec
from tokenizer_ext.trained_ranges import C2S_TRAINED_RANGES, TrainedRanges
from tokenizer_ext.vocab import looks_like_ensembl_id


@dataclass(frozen=True, slots=True)
class ModelChecks:
    """What a served checkpoint accepts beyond a task's input model.

    Attributes
    ----------
    model_genes
        The upper-cased genes the checkpoint lists, if it lists them: a cell made mostly
        of other words is refused.
    ranges
        The gene and cell counts it was trained on (its model card).
    """

    model_genes: frozenset[str] | None = None
    ranges: TrainedRanges = C2S_TRAINED_RANGES


def validate_inputs(
    spec: TaskSpec, payload: Mapping | TaskInput, checks: ModelChecks | None = None
) -> TaskInput:
    """The task's input model built from ``payload``, checked against ``checks``.

    Raises
    ------
    InvalidTaskInput
        With the schema's errors, or the model check the inputs fail.
    """
    data = _parse(spec, payload)
    if checks is not None:
        _check_trained_range(spec, data, checks.ranges)
        _check_cell_genes(spec, data, checks.model_genes)
    return data


def _parse(spec: TaskSpec, payload: Mapping | TaskInput) -> TaskInput:
    if isinstance(payload, spec.input_model):
        return payload
    if isinstance(payload, TaskInput):
        raise InvalidTaskInput(
            spec.name, f"expected {spec.input_model.__name__}, got {type(payload).__name__}"
        )
    try:
        return spec.input_model.model_validate(payload)
    except ValidationError as exc:
        errors = tuple({"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors())
        raise InvalidTaskInput(spec.name, _summarise(exc), errors=errors) from None


def _summarise(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "input"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _check_trained_range(spec: TaskSpec, data: TaskInput, ranges: TrainedRanges) -> None:
    """Refuse gene and cell counts above what the checkpoint was trained on (model card).

    Below the minima is allowed: sparse cells express fewer genes than 100, and C2S
    prompts them as they are.
    """
    if spec.group is TaskGroup.GENE_SETS:
        return
    multi = spec.group is TaskGroup.MULTI_CELL
    low, high = ranges.gene_range(multi)
    kind = "multi-cell" if multi else "single-cell"
    n_genes = getattr(data, "n_genes", None)
    if n_genes is not None and n_genes > high:
        raise InvalidTaskInput(
            spec.name,
            f"n_genes={n_genes} is above the {kind} range the model was trained on "
            f"({low}-{high} genes per cell): ask for at most {high}.",
            param="n_genes",
        )
    if multi:
        n_cells = max(len(data.prompt_cells() or ()), data.output_size().cells)
        low, high = ranges.multi_cell_cells
        if n_cells > high:
            raise InvalidTaskInput(
                spec.name,
                f"{n_cells} cells is above the range the model was trained on ({low}-{high} "
                f"cells per prompt): send at most {high} cells per request item.",
                param="n_cells",
            )


def _check_cell_genes(
    spec: TaskSpec, data: TaskInput, vocabulary: frozenset[str] | None = None
) -> None:
    """Refuse cells the model cannot read: a gene named twice, Ensembl ids instead of
    symbols, or (when the checkpoint lists its genes) mostly unknown genes."""
    for i, genes in enumerate(data.prompt_cells() or ()):
        where = "cell" if spec.group is TaskGroup.SINGLE_CELL else f"cells[{i}]"
        # set-level (C) checks first: almost every cell passes them, and they cost a
        # fraction of a Python loop over its genes
        distinct = set(genes)
        repeated = None
        if len(distinct) < len(genes):
            repeated = next((g for g, n in Counter(genes).items() if n > 1), None)
        if repeated is not None:
            raise InvalidTaskInput(
                spec.name,
                f"{where}: gene {repeated} appears more than once; a cell sentence names each "
                "gene once, most expressed first.",
                param=where,
            )
        maybe_ensembl = "ENS" in " ".join(genes).upper()
        ensembl = [g for g in genes if looks_like_ensembl_id(g)] if maybe_ensembl else []
        if ensembl and 2 * len(ensembl) >= len(genes):
            raise InvalidTaskInput(
                spec.name,
                f"{where}: genes look like Ensembl ids ({', '.join(ensembl[:3])}); C2S models "
                "read gene symbols: map the ids to symbols first (e.g. adata.var['gene_symbols']).",
                param=where,
            )
        n_unknown = len(distinct - vocabulary) if vocabulary is not None else 0
        if n_unknown and 2 * n_unknown >= len(genes):
            unknown = [g for g in genes if g not in vocabulary]
            raise InvalidTaskInput(
                spec.name,
                f"{where}: {len(unknown)} of {len(genes)} genes are not in this model's gene "
                f"vocabulary ({', '.join(unknown[:3])}); send gene symbols of the organism the "
                "model was trained on.",
                param=where,
            )
