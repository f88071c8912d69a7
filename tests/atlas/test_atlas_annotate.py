"""``c2s annotate --labels``: label-set runs of the bulk job over the fake stack."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotationJob
from tests.atlas.label_data import PBMC_LABELS
from tests.jobs.conftest import small_adata
from tests.jobs.fakes import LABELS, fake_runner, fake_stages, job_config


@pytest.fixture(scope="module")
def stages(pythia_tokenizer_dir):
    return fake_stages(tokenizer_dir=pythia_tokenizer_dir)


async def run(tmp_path, stages, **settings):
    path = tmp_path / "input.h5ad"
    small_adata(24).write_h5ad(path)
    config = job_config(path, tmp_path / "out", shard_cells=10, **settings)
    return await AnnotationJob(config, fake_runner(stages)).run()


async def test_scored_run_writes_top_label_and_score_to_obs_and_top_k_to_parquet(tmp_path, stages):
    result = await run(tmp_path, stages, labels=PBMC_LABELS, label_mode="scored", top_k_labels=3)
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    for _, row in rows.iterrows():
        top = list(row["top_labels"])
        assert len(top) == 3 and row["prediction"] == top[0]["label"]
        assert row["label_score"] == top[0]["probability"] and row["in_label_set"]
        assert row["prediction"] in PBMC_LABELS and 0 < row["label_score"] <= 1
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    annotated = ad.read_h5ad(result.files["annotated"])
    obs = annotated.obs
    assert obs["c2s_prediction"].astype(str).tolist() == rows["prediction"].tolist()
    assert obs["c2s_prediction_score"].dtype == np.float64
    assert np.allclose(obs["c2s_prediction_score"], rows["label_score"])
    assert annotated.uns["c2s_annotation"]["label_mode"] == "scored"
    summary = result.report["label_set"]
    assert summary["mode"] == "scored" and summary["n_labels"] == len(PBMC_LABELS)
    assert summary["in_set_rate"] == 1.0 and 0 < summary["mean_top_probability"] <= 1


async def test_free_run_flags_answers_outside_the_set(tmp_path, stages):
    allowed = LABELS[:2]  # the fake engine also answers the other two
    result = await run(tmp_path, stages, labels=allowed)
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert (rows["in_label_set"] == rows["prediction"].isin(allowed)).all()
    assert not rows["in_label_set"].all() and rows["label_score"].isna().all()
    obs = ad.read_h5ad(result.files["annotated"]).obs
    assert obs["c2s_prediction_in_label_set"].tolist() == rows["in_label_set"].tolist()
    assert "c2s_prediction_score" not in obs
    assert 0 < result.report["label_set"]["in_set_rate"] < 1


async def test_scored_groups_give_each_cell_its_scores(tmp_path, stages):
    result = await run(
        tmp_path,
        stages,
        task="multi_cell_type_prediction",
        group_key="sample",
        labels=LABELS,
        label_mode="scored",
        top_k_labels=2,
        max_group_cells=5,
    )
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert rows["prediction"].isin(LABELS).all() and rows["in_label_set"].all()
    for top in rows["top_labels"]:
        assert len(top) == 2 and 0 < math.fsum(t["probability"] for t in top) <= 1 + 1e-9
    # tissues are not cell types: answered freely
    assert rows["tissue"].notna().all()


def test_label_mode_needs_labels(tmp_path):
    with pytest.raises(ValueError, match="needs a label set"):
        job_config(tmp_path / "x.h5ad", tmp_path / "out", label_mode="scored")
    with pytest.raises(ValueError, match="distinct"):
        job_config(tmp_path / "x.h5ad", tmp_path / "out", labels=("a", "a"))
