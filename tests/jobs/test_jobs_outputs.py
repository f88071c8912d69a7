"""What a finished run leaves: rows, annotated.h5ad, report.json, accuracy and plots."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotationJob
from serving.bulk.outputs import UNS_KEY
from serving.bulk.rows import ROW_SCHEMA
from tests.jobs.fakes import MODEL_NAME, TISSUE, fake_runner, fake_stages, job_config
from tokenizer_ext import cell_sentences

PNG = b"\x89PNG\r\n\x1a\n"
WRONG = "CD14+ Monocyte"


@pytest.fixture(scope="module")
def oracle_run(pbmc_adata, pbmc_path, pythia_tokenizer_dir, tmp_path_factory):
    """pbmc68k through an engine that knows every label but calls Dendritic cells
    monocytes: accuracy must be exactly 1 - 240/700."""
    stages = fake_stages(tokenizer_dir=pythia_tokenizer_dir)
    sentences = cell_sentences(pbmc_adata, use_raw=True, top_k=200)
    labels = [str(x) for x in pbmc_adata.obs["bulk_labels"]]
    answers = {}
    for sentence, label in zip(sentences, labels, strict=True):
        payload = {"cell": sentence, "n_genes": 200, "organism": "Homo sapiens"}
        ids = stages.builder.builder.build("cell_type_prediction", payload).token_ids
        answers[ids] = WRONG if label == "Dendritic" else label
    stages.engine.reply = lambda ids: f" {answers[tuple(ids)]}."
    out = tmp_path_factory.mktemp("oracle") / "out"
    config = job_config(pbmc_path, out, use_raw=True, label_key="bulk_labels", shard_cells=100)
    import asyncio

    return asyncio.run(AnnotationJob(config, fake_runner(stages)).run())


def test_accuracy_and_per_class_recall(oracle_run):
    accuracy = oracle_run.report["accuracy"]
    assert accuracy["n_labelled"] == 700 and accuracy["n_correct"] == 460
    assert accuracy["accuracy"] == pytest.approx(460 / 700)
    assert accuracy["valid_label_rate"] == 1.0
    assert accuracy["per_class"]["Dendritic"] == {"cells": 240, "correct": 0, "recall": 0.0}
    assert accuracy["per_class"]["CD19+ B"]["recall"] == 1.0


def test_rows_hold_every_cell_once_with_their_tokens(oracle_run, pbmc_adata):
    rows = pq.read_table(oracle_run.files["predictions"])
    assert rows.schema.equals(ROW_SCHEMA)
    frame = rows.to_pandas()
    assert frame["row"].tolist() == list(range(700))
    assert frame["cell_id"].tolist() == list(pbmc_adata.obs_names)
    assert set(frame["task"]) == {"cell_type_prediction"} and set(frame["model"]) == {MODEL_NAME}
    assert (frame["template_index"] == 0).all() and (frame["status"] == "ok").all()
    assert frame["prompt_tokens"].between(100, 1000).all() and (frame["output_tokens"] > 0).all()
    assert (frame["raw_text"].str.strip().str.rstrip(".") == frame["prediction"]).all()
    tokens = oracle_run.report["tokens"]
    assert tokens["requests"] == 700 and tokens["prompt"] == int(frame["prompt_tokens"].sum())


def test_annotated_h5ad_has_predictions_and_provenance(oracle_run, pbmc_adata):
    annotated = ad.read_h5ad(oracle_run.files["annotated"])
    rows = pq.read_table(oracle_run.files["predictions"]).to_pandas()
    assert annotated.shape == pbmc_adata.shape
    assert list(annotated.obs["c2s_prediction"].astype(str)) == rows["prediction"].tolist()
    assert list(annotated.obs["bulk_labels"]) == list(pbmc_adata.obs["bulk_labels"])
    np.testing.assert_array_equal(annotated.raw.X.toarray(), pbmc_adata.raw.X.toarray())
    record = annotated.uns[UNS_KEY]
    assert record["task"] == "cell_type_prediction" and record["model"] == MODEL_NAME
    assert record["accuracy"] == pytest.approx(460 / 700) and record["matrix"] == "raw"
    assert json.loads(record["config_json"])["label_key"] == "bulk_labels"


def test_report_and_plots_are_written(oracle_run):
    out = oracle_run.out
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(oracle_run.report))
    assert report["input"]["value_kind"] == "log_normalised" and report["input"]["n_cells"] == 700
    assert report["cells"] == {"total": 700, "by_status": {"ok": 700}}
    assert report["run"]["annotated_cells"] == 700 and report["run"]["cells_per_s"] > 0
    assert report["predictions"]["counts"][WRONG] == 129 + 240
    for name in ("confusion_matrix", "umap"):
        assert oracle_run.files[name].read_bytes()[:8] == PNG
    progress = json.loads((out / "progress.json").read_text())
    assert progress["finished"] and progress["done_cells"] == 700


async def test_groups_give_each_cell_a_label_and_each_group_a_tissue(pbmc_path, tmp_path, stages):
    config = job_config(
        pbmc_path,
        tmp_path / "out",
        task="multi_cell_type_prediction",
        group_key="louvain",
        use_raw=True,
        label_key="bulk_labels",
    )
    result = await AnnotationJob(config, fake_runner(stages)).run()
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert rows["row"].tolist() == list(range(700)) and (rows["status"] == "ok").all()
    assert (rows["tissue"] == TISSUE).all() and rows["prediction"].notna().all()
    groups = result.report["groups"]
    size = groups["max_size"]
    assert 5 <= size <= 20 and groups["size_fit_exactly"]
    assert groups["sizes"]["max"] <= size and groups["groups"] == rows["group_id"].nunique()
    assert groups["worst_prompt_tokens"] <= 8192
    assert rows["prompt_tokens"].max() <= groups["worst_prompt_tokens"]
    louvain = ad.read_h5ad(pbmc_path, backed="r").obs["louvain"].astype(str).to_numpy()
    for group_id, members in rows.groupby("group_id"):
        assert len(set(louvain[members["row"]])) == 1 and group_id.startswith(
            louvain[members["row"].iloc[0]] + "#"
        )
        assert (members["group_size"] == len(members)).all()
    annotated = ad.read_h5ad(result.files["annotated"], backed="r")
    assert (annotated.obs["c2s_prediction_tissue"] == TISSUE).all()
    assert annotated.obs["c2s_prediction_group"].nunique() == groups["groups"]
    assert result.report["tokens"]["requests"] == groups["groups"]


async def test_random_templates_are_drawn_per_cell_and_reproducible(pbmc_path, tmp_path, stages):
    tables = []
    for name in ("a", "b"):
        config = job_config(
            pbmc_path, tmp_path / name, use_raw=True, template_index="random", n_genes=50
        )
        result = await AnnotationJob(config, fake_runner(stages)).run()
        tables.append(pq.read_table(result.files["predictions"]))
    assert tables[0].equals(tables[1])
    used = set(tables[0].column("template_index").to_pylist())
    assert len(used) > 5 and used <= set(range(15))
