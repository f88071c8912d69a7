"""``c2s annotate`` and ``c2s demo`` at the edge: bad inputs fail fast (no engine start)
with a message and exit code 2."""

from __future__ import annotations

from typer.testing import CliRunner

from serving.cli import app
from tests.jobs.conftest import small_adata

runner = CliRunner()


def annotate(*args: str):
    return runner.invoke(app, ["annotate", *args])


def test_a_missing_file_fails_before_the_engine_starts(tmp_path):
    result = annotate(str(tmp_path / "atlas.h5ad"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_ensembl_ids_are_explained(write_h5ad, tmp_path):
    adata = small_adata()
    adata.var_names = [f"ENSMUSG{i:011d}" for i in range(adata.n_vars)]
    result = annotate(str(write_h5ad(adata)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "Ensembl ids" in result.output


def test_settings_are_checked(write_h5ad, tmp_path):
    path = str(write_h5ad(small_adata()))
    result = annotate(path, "--out", str(tmp_path / "o"), "--task", "multi_cell_type_prediction")
    assert result.exit_code == 2 and "group_key" in result.output
    result = annotate(path, "--out", str(tmp_path / "o"), "--task", "cell_generation")
    assert result.exit_code == 2 and "cell_type_prediction" in result.output
    result = annotate(path, "--out", str(tmp_path / "o"), "--template-index", "first")
    assert result.exit_code == 2 and "random" in result.output


def test_demo_without_the_checkpoint_says_how_to_build_it(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--model", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "make demo-model" in result.output


def test_execution_modes_from_flags(tmp_path, monkeypatch):
    from serving.cli.annotate import execution_config
    from serving.ray_serve.config import DEMO_MODEL_DIR

    monkeypatch.delenv("C2S_MODEL", raising=False)
    monkeypatch.setenv("C2S_API_KEY", "secret")
    common = {"engine_options": {}, "execution_options": {}}
    remote = execution_config(model=None, endpoint="http://gw:8000", ray_address=None, **common)
    assert remote.mode == "endpoint" and remote.api_key.get_secret_value() == "secret"
    assert remote.tokenizer_dir is None  # the demo's tokenizer would size remote groups wrong
    named = execution_config(model=str(tmp_path), endpoint=None, ray_address="auto", **common)
    assert named.mode == "ray" and named.tokenizer_dir == tmp_path
    local = execution_config(model=None, endpoint=None, ray_address=None, **common)
    assert local.mode == "local" and local.engine.model == str(DEMO_MODEL_DIR)
    assert local.engine.cpu_cores == "all" and local.engine.enable_chunked_prefill is True


def test_scored_label_sets_get_small_kv_blocks():
    from serving.cli.annotate import engine_options

    assert engine_options("scored", 2, False) == {
        "kv_cache_gib": 2, "enforce_eager": True, "block_size": 32
    }  # fmt: skip
    assert "block_size" not in engine_options("free", 2, True)
