"""PromptBuilder: validation, exact text and ids, the gene-cache path, budgets, templates."""

from __future__ import annotations

import pytest

from serving.core.errors import InvalidTaskInput, PromptTooLong, UnknownTask
from serving.core.prompt_builder import PromptBuilder, context_length, reference_genes
from serving.core.tasks import RANDOM, default_registry
from serving.core.validation import validate_inputs
from tests.task_inputs import TASK_INPUTS

GENES = reference_genes()


@pytest.fixture(scope="module")
def builder(pythia_tokenizer_dir) -> PromptBuilder:
    return PromptBuilder.from_model(pythia_tokenizer_dir)


def test_context_from_tokenizer_config(pythia_tokenizer_dir, builder):
    assert context_length(pythia_tokenizer_dir) == builder.max_model_len == 8192


def test_cell_type_prompt_text_and_ids(builder):
    built = builder.build(
        "cell_type_prediction", {"cell": "cd74  HLA-DRA CD79A MS4A1", "n_genes": 3}
    )
    assert built.text == (
        "The following is a list of 3 gene names ordered by descending expression level in a "
        "Homo sapiens cell. Your task is to give the cell type which this cell belongs to based "
        "on its gene expression.\nCell sentence: CD74 HLA-DRA CD79A.\n"
        "The cell type corresponding to these genes is:"
    )
    assert list(built.token_ids) == builder.encoder.encode(built.text)
    assert built.prompt_tokens == 66
    assert (built.task, built.template_index, built.max_tokens) == ("cell_type_prediction", 0, 48)
    assert built.params.temperature == 0.0 and built.params.max_tokens == 48


@pytest.mark.parametrize("task", default_registry().names)
def test_every_template_ids_equal_full_tokenisation(builder, task):
    for index in range(len(builder.registry.get(task).templates)):
        built = builder.build(task, TASK_INPUTS[task], index)
        assert list(built.token_ids) == builder.encoder.encode(built.text)


def test_gene_cache_path_matches_full_tokenisation_on_long_cells(builder):
    cells = [" ".join(GENES[i : i + 300]) for i in range(0, 600, 100)]
    for task, payload in [
        ("cell_type_prediction", {"cell": cells[0], "n_genes": 250}),
        ("tissue_prediction", {"cells": cells, "n_genes": 120}),
        ("cells_to_abstract", {"cells": cells[:2], "n_genes": 300}),
    ]:
        for index in (0, 7):
            built = builder.build(task, payload, index)
            assert list(built.token_ids) == builder.encoder.encode(built.text)


def test_expression_input_is_ranked_like_c2s(builder):
    payload = {"cell": {"genes": ["cd3e", "LYZ", "CD74", "MS4A1"], "values": [1.0, 0.0, 2.5, 1.0]}}
    built = builder.build("cell_type_prediction", payload)
    # zero dropped, descending, the 1.0 tie broken by C2S's seeded shuffle
    from tokenizer_ext import sentence_from_vector

    expected = sentence_from_vector([1.0, 0.0, 2.5, 1.0], ["CD3E", "LYZ", "CD74", "MS4A1"])
    assert f"Cell sentence: {expected}.\n" in built.text
    assert expected.split()[0] == "CD74"


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"cell": "CD3E", "cells": ["x"]}, ("cells",)),
        ({"n_genes": 3}, ("cell",)),
        ({"cell": "CD3E", "n_genes": 0}, ("n_genes",)),
        ({"cell": "CD3E", "organism": "Danio rerio"}, ("organism",)),
        ({"cell": "   "}, ("cell",)),
        ({"cell": {"genes": ["A", "a"], "values": [1, 2]}}, ("cell",)),
        ({"cell": {"genes": ["A"], "values": [-1.0]}}, ("cell",)),
        ({"cell": {"genes": ["A"], "values": ["nan"]}}, ("cell", "ExpressionCell", "values", 0)),
        ({"cell": {"genes": ["A"], "values": [1, 2]}}, ("cell", "ExpressionCell", "values")),
        ({"cell": {"genes": ["A"], "values": [0.0]}}, ("cell",)),
    ],
)
def test_invalid_inputs_raise_typed_errors(builder, payload, loc):
    with pytest.raises(InvalidTaskInput) as info:
        builder.build("cell_type_prediction", payload)
    assert info.value.task == "cell_type_prediction"
    assert any(tuple(e["loc"][: len(loc)]) == loc for e in info.value.errors), info.value.errors


def test_template_index_out_of_range(builder):
    with pytest.raises(InvalidTaskInput, match=r"this task has 15 templates \(0-14\)") as info:
        builder.build("cell_type_prediction", {"cell": "CD3E"}, 15)
    assert info.value.param == "template_index"


def test_unknown_task(builder):
    with pytest.raises(UnknownTask):
        builder.build("nope", {})


def test_prompt_too_long_reports_counts(builder):
    cell = " ".join(GENES)  # 765 genes, about 2,600 tokens
    with pytest.raises(PromptTooLong) as info:
        builder.build("tissue_prediction", {"cells": [cell] * 4, "n_genes": 765})
    assert info.value.max_model_len == 8192 and info.value.prompt_tokens > 8192
    assert info.value.param == "input_tokens"


def test_max_tokens_clipped_to_the_room_left(pythia_tokenizer_dir):
    small = PromptBuilder.from_model(pythia_tokenizer_dir, max_model_len=100)
    built = small.build("cell_type_generation", {"cell_type": "B cell", "n_genes": 200})
    assert built.max_tokens == 100 - built.prompt_tokens


def test_generation_budget_uses_measured_tokens_per_gene(builder):
    assert 3.0 < builder.tokens_per_gene < 3.6  # Pythia BPE on real symbols
    built = builder.build("cell_type_generation", {"cell_type": "B cell", "n_genes": 200})
    assert built.max_tokens == int(-(-200 * builder.tokens_per_gene * 1.1 // 1)) + 8 + 16


def test_random_templates_are_seeded(pythia_tokenizer_dir):
    first = PromptBuilder.from_model(pythia_tokenizer_dir, template_seed=42)
    second = PromptBuilder.from_model(pythia_tokenizer_dir, template_seed=42)
    picks = [
        first.build("tissue_generation", {"tissue": "lung"}, RANDOM).template_index
        for _ in range(20)
    ]
    assert picks == [
        second.build("tissue_generation", {"tissue": "lung"}, RANDOM).template_index
        for _ in range(20)
    ]
    assert len(set(picks)) > 5


def test_validate_rejects_another_tasks_input(builder):
    def validate(task, payload):
        return validate_inputs(builder.registry.get(task), payload)

    data = validate("cell_generation", {"n_genes": 5})
    assert validate("cell_generation", data) is data
    with pytest.raises(InvalidTaskInput, match="expected CellTypePredictionInput"):
        validate("cell_type_prediction", data)
