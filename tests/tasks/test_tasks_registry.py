"""The registry: twelve tasks, typed lookup errors, declarations and sampling defaults."""

from __future__ import annotations

import pytest

from serving.core.errors import InvalidRequest, UnknownTask
from serving.core.tasks import OutputKind, TaskGroup, default_registry

EXPECTED = {
    TaskGroup.SINGLE_CELL: ["cell_generation", "cell_type_prediction", "cell_type_generation"],
    TaskGroup.MULTI_CELL: [
        "multi_cell_generation",
        "tissue_prediction",
        "multi_cell_type_prediction",
        "tissue_generation",
        "multi_cell_type_generation",
        "cells_to_abstract",
        "abstract_to_cells",
    ],
    TaskGroup.GENE_SETS: ["gene_set_to_genes", "genes_to_gene_set"],
}
PUBLIC = {
    "cell_type_prediction": ("cell_type_prediction", 15),
    "cell_type_generation": ("cell_type_generation", 10),
    "tissue_prediction": ("tissue_prediction", 15),
    "tissue_generation": ("tissue_conditional_generation", 14),
    "cells_to_abstract": ("natural_language_interpretation", 15),
}


def test_twelve_tasks_in_model_card_order():
    registry = default_registry()
    assert registry.names == tuple(n for names in EXPECTED.values() for n in names)
    for group, names in EXPECTED.items():
        assert [s.name for s in registry if s.group == group] == names


def test_unknown_task_is_typed_and_lists_valid_names():
    with pytest.raises(UnknownTask) as info:
        default_registry().get("cell_typing")
    error = info.value
    assert isinstance(error, InvalidRequest)
    assert error.param == "task"
    assert error.valid == default_registry().names
    assert str(error).startswith("Unknown task 'cell_typing'. Valid tasks: cell_generation, ")


def test_public_tasks_are_not_experimental_and_keep_every_c2s_variant():
    for spec in default_registry():
        if spec.name in PUBLIC:
            assert not spec.experimental
            assert (spec.c2s_name, len(spec.templates)) == PUBLIC[spec.name]
        else:
            assert spec.experimental and spec.c2s_name is None
            assert len(spec.templates) == 5


@pytest.mark.parametrize(
    ("task", "temperature", "top_p", "top_k"),
    [
        ("cell_type_prediction", 0.0, 1.0, None),
        ("tissue_prediction", 0.0, 1.0, None),
        ("multi_cell_type_prediction", 0.0, 1.0, None),
        ("genes_to_gene_set", 0.0, 1.0, None),
        ("cell_type_generation", 1.0, 0.95, 50),
        ("tissue_generation", 1.0, 0.95, 50),
        ("abstract_to_cells", 1.0, 0.95, 50),
        ("cells_to_abstract", 0.7, 0.9, 30),
    ],
)
def test_sampling_defaults_follow_c2s(task, temperature, top_p, top_k):
    params = default_registry().get(task).sampling.params(max_tokens=10)
    assert (params.temperature, params.top_p, params.top_k) == (temperature, top_p, top_k)
    assert params.max_tokens == 10


def test_output_kinds():
    kinds = {s.name: s.output for s in default_registry()}
    assert kinds["cell_type_prediction"] is OutputKind.LABEL
    assert kinds["cell_generation"] is OutputKind.GENES
    assert kinds["multi_cell_generation"] is OutputKind.CELLS
    assert kinds["multi_cell_type_prediction"] is OutputKind.CELL_LABELS
    assert kinds["gene_set_to_genes"] is OutputKind.ALPHABETICAL_GENES
    assert kinds["cells_to_abstract"] is OutputKind.TEXT


def test_max_tokens_scale_with_genes_and_tokens_per_gene():
    registry = default_registry()
    spec = registry.get("tissue_generation")
    size = spec.input_model(tissue="blood", n_genes=100, n_cells=5).output_size()
    assert (size.genes, size.cells) == (500, 5)
    # 500 genes x 3.3 tokens x 1.1 margin, 8 per cell header, 16 for the closing "."
    assert spec.sampling.max_tokens(size, 3.3) == 1815 + 40 + 16
    label = registry.get("cell_type_prediction")
    assert label.sampling.max_tokens(label.input_model(cell="A").output_size(), 3.3) == 48


def test_registry_rejects_duplicate_names():
    from serving.core.tasks import TaskRegistry

    spec = default_registry().get("cell_generation")
    with pytest.raises(ValueError, match="declared twice"):
        TaskRegistry([spec, spec])
