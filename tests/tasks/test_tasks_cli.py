"""`c2s tasks` and `c2s prompt` through Typer's test runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()


def test_tasks_lists_every_task_with_inputs():
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = next(line for line in lines if "│ cell_type_prediction " in line)
    assert "│ single_cell │ cell " in row and "│ label " in row
    assert "│ 15 " in row and "C2S: cell_type_prediction" in row
    for name in ("genes_to_gene_set", "abstract_to_cells", "multi_cell_type_generation"):
        assert any(f"│ {name} " in line and "experimental" in line for line in lines)
    for field in (
        "n_genes=200",
        "organism='Homo sapiens'",
        "gene_set_name",
        "abstract",
        "n_cells=5",
    ):
        assert field in result.output


def test_prompt_prints_exact_prompt_and_token_count(tmp_path, pythia_tokenizer_dir):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"cell": "CD74 HLA-DRA CD79A MS4A1", "n_genes": 3}))
    args = [
        "prompt",
        "cell_type_prediction",
        "--input",
        str(path),
        "--model",
        str(pythia_tokenizer_dir),
    ]
    result = runner.invoke(app, [*args, "--template-index", "3"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Analyze the following list of 3 genes sorted by decreasing expression levels in a "
        "Homo sapiens cell and determine its cell type.\n"
        "Cell sentence: CD74 HLA-DRA CD79A.\n"
        "Based on these genes, the corresponding cell type is:\n"
        "--- 53 prompt tokens (template 3 of 15, tokenizer of pythia-tokenizer, max_tokens 48)\n"
    )


def test_prompt_with_a_template_file(tmp_path, pythia_tokenizer_dir):
    inputs, templates = tmp_path / "input.json", tmp_path / "templates.json"
    inputs.write_text(json.dumps({"tissue": "lung", "n_cells": 2, "n_genes": 10}))
    templates.write_text(
        json.dumps(
            {
                "model_input": ["{num_cells} {tissue} cells:"],
                "response": ["{multi_cell_sentences}."],
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "prompt",
            "tissue_generation",
            "--input",
            str(inputs),
            "--model",
            str(pythia_tokenizer_dir),
            "--templates",
            str(templates),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 lung cells:\n--- 4 prompt tokens (template 0 of 1,")


def test_prompt_errors_exit_2_with_the_message(tmp_path, pythia_tokenizer_dir):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"cell": "CD3E", "extra": 1}))
    base = ["--input", str(path), "--model", str(pythia_tokenizer_dir)]
    unknown = runner.invoke(app, ["prompt", "nope", *base])
    assert unknown.exit_code == 2
    assert "error: Unknown task 'nope'. Valid tasks: cell_generation," in unknown.output
    invalid = runner.invoke(app, ["prompt", "cell_type_prediction", *base])
    assert invalid.exit_code == 2
    assert "extra: Extra inputs are not permitted" in invalid.output
    path.write_text(json.dumps({"genes": ["CD3E"]}))
    out_of_range = runner.invoke(
        app, ["prompt", "genes_to_gene_set", *base, "--template-index", "9"]
    )
    assert out_of_range.exit_code == 2
    assert (
        "template index 9 is out of range: this task has 5 templates (0-4)" in out_of_range.output
    )
    missing = runner.invoke(
        app, ["prompt", "genes_to_gene_set", *base[:2], "--model", str(tmp_path)]
    )
    assert missing.exit_code == 2 and "error:" in missing.output
