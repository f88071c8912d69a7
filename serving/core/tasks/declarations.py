"""The twelve tasks of the C2S model card, each declared once."""

from __future__ import annotations

from serving.core.tasks import inputs
from serving.core.tasks.parsers import OutputKind
from serving.core.tasks.spec import (
    ABSTRACT_SAMPLING,
    CELL_SAMPLING,
    GREEDY_GENES,
    GREEDY_LABEL,
    SamplingDefaults,
    TaskGroup,
    TaskSpec,
)
from serving.core.tasks.templates import load_packaged

SINGLE, MULTI, GENE_SETS = TaskGroup.SINGLE_CELL, TaskGroup.MULTI_CELL, TaskGroup.GENE_SETS


def _task(
    name: str,
    group: TaskGroup,
    description: str,
    input_model: type[inputs.TaskInput],
    answer_field: str,
    output: OutputKind,
    sampling: SamplingDefaults,
    *,
    c2s_name: str | None = None,
) -> TaskSpec:
    # a task is experimental exactly when C2S publishes no template set for it
    return TaskSpec(
        name=name,
        group=group,
        description=description,
        input_model=input_model,
        templates=load_packaged(name),
        answer_fields=frozenset({answer_field}),
        output=output,
        sampling=sampling,
        experimental=c2s_name is None,
        c2s_name=c2s_name,
    )


def builtin_tasks() -> tuple[TaskSpec, ...]:
    """The twelve declarations, in the model card's order."""
    return (
        _task(
            "cell_generation",
            SINGLE,
            "Generate one cell sentence with no condition.",
            inputs.CellGenerationInput,
            "cell_sentence",
            OutputKind.GENES,
            CELL_SAMPLING,
        ),
        _task(
            "cell_type_prediction",
            SINGLE,
            "Predict the cell type of one cell.",
            inputs.CellTypePredictionInput,
            "cell_type",
            OutputKind.LABEL,
            GREEDY_LABEL,
            c2s_name="cell_type_prediction",
        ),
        _task(
            "cell_type_generation",
            SINGLE,
            "Generate one cell sentence of a given cell type.",
            inputs.CellTypeGenerationInput,
            "cell_sentence",
            OutputKind.GENES,
            CELL_SAMPLING,
            c2s_name="cell_type_generation",
        ),
        _task(
            "multi_cell_generation",
            MULTI,
            "Generate several cell sentences with no condition.",
            inputs.MultiCellGenerationInput,
            "multi_cell_sentences",
            OutputKind.CELLS,
            CELL_SAMPLING,
        ),
        _task(
            "tissue_prediction",
            MULTI,
            "Predict the tissue that several cells come from.",
            inputs.TissuePredictionInput,
            "tissue",
            OutputKind.LABEL,
            GREEDY_LABEL,
            c2s_name="tissue_prediction",
        ),
        _task(
            "multi_cell_type_prediction",
            MULTI,
            "Predict the cell type of each of several cells.",
            inputs.MultiCellTypePredictionInput,
            "cell_types",
            OutputKind.CELL_LABELS,
            GREEDY_LABEL,
        ),
        _task(
            "tissue_generation",
            MULTI,
            "Generate several cell sentences from a given tissue.",
            inputs.TissueGenerationInput,
            "multi_cell_sentences",
            OutputKind.CELLS,
            CELL_SAMPLING,
            c2s_name="tissue_conditional_generation",
        ),
        _task(
            "multi_cell_type_generation",
            MULTI,
            "Generate one cell sentence for each of several given cell types.",
            inputs.MultiCellTypeGenerationInput,
            "multi_cell_sentences",
            OutputKind.CELLS,
            CELL_SAMPLING,
        ),
        _task(
            "cells_to_abstract",
            MULTI,
            "Write an abstract summarising several cells.",
            inputs.CellsToAbstractInput,
            "abstract",
            OutputKind.TEXT,
            ABSTRACT_SAMPLING,
            c2s_name="natural_language_interpretation",
        ),
        _task(
            "abstract_to_cells",
            MULTI,
            "Generate several cell sentences that an abstract describes.",
            inputs.AbstractToCellsInput,
            "multi_cell_sentences",
            OutputKind.CELLS,
            CELL_SAMPLING,
        ),
        _task(
            "gene_set_to_genes",
            GENE_SETS,
            "List the genes of a named gene set, alphabetically.",
            inputs.GeneSetToGenesInput,
            "genes",
            OutputKind.ALPHABETICAL_GENES,
            GREEDY_GENES,
        ),
        _task(
            "genes_to_gene_set",
            GENE_SETS,
            "Name the gene set that some genes form.",
            inputs.GenesToGeneSetInput,
            "gene_set_name",
            OutputKind.LABEL,
            GREEDY_LABEL,
        ),
    )
