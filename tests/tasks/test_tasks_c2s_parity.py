"""Byte-for-byte parity with cell2sentence 1.2.0 wherever it covers a task.

cell2sentence is installed (--no-deps) for these tests only; the product never imports it.
Its prompt formatters draw one template per sample with ``random.choice`` after
``random.seed(42)``; a `PromptBuilder` in random mode with the same seed must render the
very same prompts, and the answer templates the very same responses.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from serving.core.prompt_builder import PromptBuilder
from serving.core.tasks import RANDOM, default_registry

c2s_formatter = pytest.importorskip("cell2sentence.prompt_formatter")
datasets = pytest.importorskip("datasets")

C2S_FILES = {
    "cell_type_prediction": "single_cell_cell_type_prediction_prompts.json",
    "cell_type_generation": "single_cell_cell_type_conditional_generation_prompts.json",
    "tissue_prediction": "multi_cell_tissue_prediction_prompts.json",
    "tissue_generation": "multi_cell_tissue_conditional_generation.json",
    "cells_to_abstract": "multi_cell_natural_lang_interpretation_prompts.json",
}
SENTENCES = [
    "CD74 HLA-DRA CD79A MS4A1 CD19 CD37 HLA-DPB1 CD52 RP11-782C8.1",
    "CD3D CD3E IL7R LTB CD2 NOSIP",
    "LYZ S100A9 S100A8 CST3 FCN1 TYROBP AIF1 LST1",
    "GNLY NKG7 GZMB PRF1 CST7",
    "FTL CD74 AIF1 JUNB HLA-DPA1 LST1 HLA-DRA",
]
LABELS = ["CD19+ B", "CD4+/CD25 T Reg", "CD14+ Monocyte", "CD56+ NK", "Dendritic"]
N_SAMPLES = 40


@pytest.fixture(scope="module")
def builder(pythia_tokenizer_dir) -> PromptBuilder:
    return PromptBuilder(pythia_tokenizer_dir / "tokenizer.json", 8192)


@pytest.mark.parametrize("task", sorted(C2S_FILES))
def test_packaged_public_templates_equal_c2s_files(task):
    theirs = resources.files("cell2sentence") / "prompts" / C2S_FILES[task]
    ours = resources.files("serving.core.tasks") / "templates" / f"{task}.json"
    assert ours.read_bytes() == theirs.read_bytes()
    assert json.loads(ours.read_text())["model_input"] == list(
        default_registry().get(task).templates.model_input
    )


def _single_cell_ds():
    n = N_SAMPLES
    return datasets.Dataset.from_dict(
        {
            "cell_sentence": [SENTENCES[i % 5] for i in range(n)],
            "cell_type": [LABELS[i % 5] for i in range(n)],
            "organism": ["Homo sapiens" if i % 3 else "Mus musculus" for i in range(n)],
        }
    )


@pytest.mark.parametrize("top_k", [3, 6, 20])
def test_cell_type_prediction_matches_c2s(builder, top_k):
    ds = _single_cell_ds()
    theirs = c2s_formatter.C2SPromptFormatter("cell_type_prediction", top_k).format_hf_ds(ds)
    ours = PromptBuilder(builder.encoder, 8192)  # fresh random stream, seeded 42
    spec = ours.registry.get("cell_type_prediction")
    for row, expected in zip(ds, theirs, strict=True):
        payload = {"cell": row["cell_sentence"], "n_genes": top_k, "organism": row["organism"]}
        assert ours.build(spec, payload, RANDOM).text == expected["model_input"]
        assert spec.render_answer({"cell_type": row["cell_type"]}) == expected["response"]


@pytest.mark.parametrize("top_k", [3, 20])
def test_batched_cell_type_prompts_are_c2s_prompts_tokenised(builder, top_k):
    """BuildStage builds a chunk of one-cell prompts together; each is C2S's text's ids."""
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage

    ds = _single_cell_ds()
    theirs = c2s_formatter.C2SPromptFormatter("cell_type_prediction", top_k).format_hf_ds(ds)
    picker = PromptBuilder(builder.encoder, 8192)  # C2S's template draws, seeded 42
    jobs = []
    for row in ds:
        payload = {"cell": row["cell_sentence"], "n_genes": top_k, "organism": row["organism"]}
        index = picker.build("cell_type_prediction", payload, RANDOM).template_index
        jobs.append(PromptRequest("cell_type_prediction", payload, template=index))
    built = BuildStage(PromptBuilder(builder.encoder, 8192)).build(jobs)
    assert len({job.template for job in jobs}) > 5  # many templates in one chunk
    for prompt, expected in zip(built, theirs, strict=True):
        assert list(prompt.token_ids) == builder.encoder.encode(expected["model_input"])


@pytest.mark.parametrize("top_k", [4, 9])
def test_cell_type_generation_matches_c2s(builder, top_k):
    ds = _single_cell_ds()
    theirs = c2s_formatter.C2SPromptFormatter("cell_type_generation", top_k).format_hf_ds(ds)
    ours = PromptBuilder(builder.encoder, 8192)
    spec = ours.registry.get("cell_type_generation")
    for row, expected in zip(ds, theirs, strict=True):
        payload = {"cell_type": row["cell_type"], "n_genes": top_k, "organism": row["organism"]}
        assert ours.build(spec, payload, RANDOM).text == expected["model_input"]
        sentence = " ".join(row["cell_sentence"].split(" ")[:top_k])
        assert spec.render_answer({"cell_sentence": sentence}) == expected["response"]


MULTI = {
    "tissue_prediction": "tissue_prediction",
    "tissue_conditional_generation": "tissue_generation",
    "natural_language_interpretation": "cells_to_abstract",
}


def _groups_ds():
    groups = [[(i + j) % 5 for j in range(2 + i % 4)] for i in range(N_SAMPLES)]
    return datasets.Dataset.from_dict(
        {
            "multi_cell_groupings": groups,
            "organism": ["Homo sapiens" if i % 4 else "Mus musculus" for i in range(N_SAMPLES)],
            "tissue": ["peripheral blood" if i % 2 else "lung" for i in range(N_SAMPLES)],
            "abstract": [f"Study {i} of immune cells" for i in range(N_SAMPLES)],
        }
    )


def _payload(task: str, group: dict, top_k: int) -> dict:
    cells = [SENTENCES[c] for c in group["multi_cell_groupings"]]
    base = {"n_genes": top_k, "organism": group["organism"]}
    if task == "tissue_generation":
        return {**base, "tissue": group["tissue"], "n_cells": len(cells)}
    return {**base, "cells": cells}


def _answer(task: str, group: dict, top_k: int) -> dict:
    if task == "tissue_prediction":
        return {"tissue": group["tissue"]}
    if task == "cells_to_abstract":
        return {"abstract": group["abstract"]}
    blocks = "".join(
        f"Cell {i}:\n{' '.join(SENTENCES[c].split(' ')[:top_k])}.\n"
        for i, c in enumerate(group["multi_cell_groupings"], start=1)
    )
    return {"multi_cell_sentences": blocks}


@pytest.mark.parametrize("c2s_task", sorted(MULTI))
@pytest.mark.parametrize("top_k", [2, 5])
def test_multi_cell_tasks_match_c2s(builder, c2s_task, top_k):
    cells_ds, groups = _single_cell_ds(), _groups_ds()
    formatter = c2s_formatter.C2SMultiCellPromptFormatter(c2s_task, top_k)
    theirs = formatter.format_hf_ds(cells_ds, groups)
    ours = PromptBuilder(builder.encoder, 8192)
    spec = ours.registry.get(MULTI[c2s_task])
    assert spec.c2s_name == c2s_task
    for group, expected in zip(groups, theirs, strict=True):
        built = ours.build(spec, _payload(spec.name, group, top_k), RANDOM)
        assert built.text == expected["model_input"]
        assert spec.render_answer(_answer(spec.name, group, top_k)) == expected["response"]


def test_genes_outside_the_model_list_are_cached_once_with_the_same_ids(pythia_tokenizer_dir):
    builder = PromptBuilder(pythia_tokenizer_dir / "tokenizer.json", 8192, genes=["CD3D", "LYZ"])
    payload = {"cell": "CD3D WIDEGENE1 LYZ wideGene2 WIDEGENE1", "organism": "Homo sapiens"}
    built = builder.build("cell_type_prediction", payload)
    assert built.token_ids == tuple(builder.encoder.encode(built.text))
    assert builder.gene_cache.vocabulary.symbols == ("CD3D", "LYZ", "WIDEGENE1", "WIDEGENE2")
    builder.max_cached_genes = 4  # full: new genes fall back to tokenising the prompt
    other = builder.build("cell_type_prediction", {**payload, "cell": "CD3D NEWGENE"})
    assert other.token_ids == tuple(builder.encoder.encode(other.text))
    assert len(builder.gene_cache) == 4
