"""Bad inputs fail before any engine time, with messages that say what to change."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from serving.bulk import AnnotateError, AnnotationJob, InputError
from serving.bulk.job import preflight
from tests.jobs.conftest import small_adata
from tests.jobs.fakes import fake_runner, job_config


def check(path, tmp_path, **settings):
    return preflight(job_config(path, tmp_path / "out", **settings))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        check(tmp_path / "nope.h5ad", tmp_path)


def test_not_an_h5ad(tmp_path):
    path = tmp_path / "cells.h5ad"
    path.write_text("cell,gene\n")
    with pytest.raises(InputError, match=r"not a readable \.h5ad"):
        check(path, tmp_path)


def test_ensembl_ids_point_at_a_symbols_column(write_h5ad, tmp_path):
    adata = small_adata()
    symbols = list(adata.var_names)
    adata.var["feature_name"] = symbols
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    path = write_h5ad(adata)
    with pytest.raises(InputError, match="Ensembl ids") as error:
        check(path, tmp_path)
    assert "--gene-symbols-column" in str(error.value) and "feature_name" in str(error.value)
    source = check(path, tmp_path, gene_symbols_column="feature_name")
    assert source.vocabulary.symbols[:2] == ("CD74", "HLA-DRA")


def test_unknown_symbols_column(write_h5ad, tmp_path):
    with pytest.raises(InputError, match="not a column of var"):
        check(write_h5ad(small_adata()), tmp_path, gene_symbols_column="symbol")


def test_names_colliding_after_upper_casing(write_h5ad, tmp_path):
    genes = ("Cd3e", "CD3E", "LYZ")
    with pytest.raises(InputError, match="collide after upper-casing"):
        check(write_h5ad(small_adata(genes=genes)), tmp_path)


def test_scaled_values_point_at_raw(write_h5ad, tmp_path):
    adata = small_adata(layout="dense")
    adata.X[3, 2] = -0.5
    with pytest.raises(InputError, match="negative values") as error:
        check(write_h5ad(adata), tmp_path)
    assert "cell3" in str(error.value) and "--use-raw" in str(error.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_infinite_values_name_the_cell(write_h5ad, tmp_path, bad):
    adata = small_adata(layout="dense")
    adata.X[7, 1] = bad
    with pytest.raises(InputError, match="NaN or infinite") as error:
        check(write_h5ad(adata), tmp_path)
    assert "cell7" in str(error.value)


def test_empty_cells_fail_unless_skipped(write_h5ad, tmp_path):
    adata = small_adata(layout="dense")
    adata.X[[4, 9]] = 0
    path = write_h5ad(adata)
    with pytest.raises(InputError, match="2 cell\\(s\\) express no gene") as error:
        check(path, tmp_path)
    assert "--skip-empty-cells" in str(error.value) and "cell4" in str(error.value)
    source = check(path, tmp_path, skip_empty_cells=True)
    assert source.values.empty_rows.tolist() == [4, 9]


async def test_skipped_empty_cells_get_a_row_without_prediction(write_h5ad, tmp_path, stages):
    adata = small_adata(n_cells=30, layout="csr")
    adata.X = adata.X.toarray()
    adata.X[[0, 17]] = 0
    config = job_config(write_h5ad(adata), tmp_path / "out", skip_empty_cells=True, n_genes=8)
    result = await AnnotationJob(config, fake_runner(stages)).run()
    import pyarrow.parquet as pq

    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert rows["row"].tolist() == list(range(30))
    empty = rows[rows["status"] == "empty_cell"]
    assert empty["row"].tolist() == [0, 17] and empty["prediction"].isna().all()
    assert (empty["prompt_tokens"] == 0).all()
    assert result.report["cells"]["by_status"] == {"ok": 28, "empty_cell": 2}


def test_missing_label_and_group_columns_list_the_columns(write_h5ad, tmp_path):
    path = write_h5ad(small_adata())
    with pytest.raises(InputError, match="--label-key 'cell_type' is not a column") as error:
        check(path, tmp_path, label_key="cell_type")
    assert "'label'" in str(error.value) and "'sample'" in str(error.value)
    with pytest.raises(InputError, match="--group-key 'donor'"):
        check(path, tmp_path, task="multi_cell_type_prediction", group_key="donor")


def test_multi_cell_runs_need_a_group_key(tmp_path):
    with pytest.raises(ValidationError, match="group_key"):
        job_config(tmp_path / "x.h5ad", tmp_path, task="multi_cell_type_prediction")


def test_raw_and_layer_must_exist(write_h5ad, tmp_path):
    adata = small_adata()
    adata.layers["counts"] = adata.X.copy()
    path = write_h5ad(adata)
    with pytest.raises(InputError, match=r"no \.raw matrix"):
        check(path, tmp_path, use_raw=True)
    with pytest.raises(InputError, match=r"no layer 'logcounts'.*counts"):
        check(path, tmp_path, layer="logcounts")
    assert check(path, tmp_path, layer="counts").values.kind == "log_normalised"
    with pytest.raises(ValidationError, match="not both"):
        job_config(path, tmp_path, use_raw=True, layer="counts")


def test_template_index_must_exist_for_every_task(write_h5ad, tmp_path):
    path = write_h5ad(small_adata())
    with pytest.raises(AnnotateError, match="does not exist for multi_cell_type_prediction"):
        check(
            path, tmp_path, task="multi_cell_type_prediction", group_key="sample", template_index=9
        )


async def test_raw_counts_are_noted_and_rank_as_normalised(write_h5ad, tmp_path, stages):
    """normalize_total + log1p keep each cell's gene order: same prompts, same answers."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, size=(24, 10)).astype(np.float32)
    counts[:, 0] += 1
    adata = small_adata(n_cells=24)
    adata.X = sp.csr_matrix(counts)
    normalised = adata.copy()
    normalised.X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True) * 1e4))
    runs = []
    for name, data in (("counts", adata), ("lognorm", normalised)):
        config = job_config(write_h5ad(data, f"{name}.h5ad"), tmp_path / name, n_genes=10)
        runs.append(await AnnotationJob(config, fake_runner(stages)).run())
    assert runs[0].report["input"]["value_kind"] == "raw_counts"
    assert any("raw counts" in note for note in runs[0].report["input"]["notes"])
    assert runs[1].report["input"]["value_kind"] == "log_normalised"
    import pyarrow.parquet as pq

    tables = [pq.read_table(r.files["predictions"]).drop(["model"]) for r in runs]
    assert tables[0].equals(tables[1])


async def test_dense_csr_and_csc_files_give_the_same_rows(write_h5ad, tmp_path, stages):
    import pyarrow.parquet as pq

    tables = []
    for layout in ("dense", "csr", "csc"):
        path = write_h5ad(small_adata(n_cells=50, layout=layout), f"{layout}.h5ad")
        config = job_config(path, tmp_path / layout, n_genes=10, read_rows=7)
        if layout == "csc":
            with pytest.warns(UserWarning, match="backed CSC"):
                result = await AnnotationJob(config, fake_runner(stages)).run()
            assert any("CSC" in note for note in result.report["input"]["notes"])
        else:
            result = await AnnotationJob(config, fake_runner(stages)).run()
        tables.append(pq.read_table(result.files["predictions"]))
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
