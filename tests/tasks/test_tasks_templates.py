"""Template sets: every variant renders, user files replace them, random mode is C2S's."""

from __future__ import annotations

import json
import random

import pytest

from serving.core.tasks import RANDOM, TemplateError, default_registry
from serving.core.tasks.templates import TemplatePicker, load_template_file, placeholders
from tests.task_inputs import TASK_INPUTS


@pytest.mark.parametrize("task", default_registry().names)
def test_every_variant_renders_with_no_placeholder_left(task):
    spec = default_registry().get(task)
    data = spec.input_model.model_validate(TASK_INPUTS[task])
    for index in range(len(spec.templates)):
        text = spec.render_prompt(data, index)
        assert "{" not in text and "}" not in text
        assert not text.endswith(" "), "C2S prompts end without a trailing space"
        assert placeholders(spec.templates.model_input[index]) <= data.placeholders


@pytest.mark.parametrize("task", default_registry().names)
def test_answer_template_is_one_field_and_a_full_stop(task):
    spec = default_registry().get(task)
    (field,) = spec.answer_fields
    assert spec.templates.answer == "{" + field + "}."


def test_experimental_templates_follow_c2s_style():
    for spec in default_registry():
        if spec.experimental:
            for template in spec.templates.model_input:
                assert "{organism}" in template
                assert template.endswith(":")


def test_multi_cell_text_shape():
    spec = default_registry().get("tissue_prediction")
    data = spec.input_model(cells=["a b c", "d e"], n_genes=2)
    assert spec.render_prompt(data, 5) == (
        "Provided below is an expression-ranked list of 2 genes for 2 different Homo sapiens "
        "cells. Infer the tissue of origin for these cells.\nCell sentences:\n"
        "Cell 1:\nA B.\nCell 2:\nD E.\n.\nTissue of origin:"
    )


def test_template_file_replaces_a_tasks_templates(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps(
            {
                "model_input": [
                    "Cell: {cell_sentence}.\nType:",
                    "{num_genes} genes: {cell_sentence}",
                ],
                "response": ["{cell_type}."],
            }
        )
    )
    registry = default_registry().with_templates({"cell_type_prediction": path})
    spec = registry.get("cell_type_prediction")
    assert spec.templates.source == str(path)
    data = spec.input_model(cell="CD3E CD3D LYZ", n_genes=2)
    assert spec.render_prompt(data, 0) == "Cell: CD3E CD3D.\nType:"
    assert spec.render_prompt(data, 1) == "2 genes: CD3E CD3D"
    # other tasks and the default registry are unchanged
    assert registry.get("tissue_prediction") is default_registry().get("tissue_prediction")
    assert len(default_registry().get("cell_type_prediction").templates) == 15


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"model_input": ["{cell_type} cell:"], "response": ["{cell_type}."]},
            "uses \\['cell_type'\\]",
        ),
        ({"model_input": ["x"], "response": ["{tissue}."]}, "response\\[0\\] uses"),
        ({"model_input": [], "response": ["{cell_type}."]}, "non-empty list"),
        ({"model_input": ["x"]}, "exactly the keys"),
        ({"model_input": ["{0}"], "response": ["{cell_type}."]}, "not a plain name"),
    ],
)
def test_bad_template_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(TemplateError, match=message):
        default_registry().with_templates({"cell_type_prediction": path})


def test_unreadable_template_file(tmp_path):
    with pytest.raises(TemplateError, match="cannot read"):
        load_template_file(tmp_path / "missing.json")


def test_random_mode_draws_c2s_sequence():
    # C2S: random.seed(42) once, then random.choice(model_input) per sample
    random.seed(42)
    templates = list(range(15))
    expected = [random.choice(templates) for _ in range(50)]
    picker = TemplatePicker()
    assert [picker.pick(RANDOM, 15) for _ in range(50)] == expected
    assert picker.pick(3, 15) == 3
