"""``c2s annotate`` SIGKILLed five times at random moments, then run to the end: its
output is identical to a clean run's. The job talks to a gateway over a deterministic
fake engine (loopback), so any difference comes from the resume, not from sampling."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

import pytest

from serving.config import GatewayConfig
from serving.gateway.app import create_app
from serving.tasks import default_registry
from tests.reliability.conftest import fake_stages, serving_on_loopback
from tests.reliability.load import save_figures

pytestmark = [pytest.mark.soak]
jobs = pytest.importorskip("serving.jobs", reason="the bulk job (serving/jobs) is not here")
from serving.jobs.outputs import ANNOTATED, PREDICTIONS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = 5
LABELS = [" B cell.", " CD4 T cell.", " NK cell.", " CD14+ Monocyte.", " Dendritic cell."]


def label_of(prompt_ids) -> str:
    # deterministic and different across cells: a row answered for the wrong cell shows
    return LABELS[sum(prompt_ids) % len(LABELS)]


@pytest.fixture(scope="module")
def pbmc_h5ad(tmp_path_factory) -> Path:
    import scanpy as sc

    path = tmp_path_factory.mktemp("pbmc") / "pbmc68k_reduced.h5ad"
    sc.datasets.pbmc68k_reduced().write_h5ad(path)
    return path


def annotate_command(h5ad: Path, out: Path, model: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "serving.cli",
        "annotate",
        str(h5ad),
        "--out",
        str(out),
        "--model",
        str(model),
        "--endpoint",
        url,
        "--use-raw",
        "--n-genes",
        "50",
        "--shard-cells",
        "35",
        "--max-inflight",
        "35",
        "--request-cells",
        "7",
        "--no-progress",
    ]


async def run_until(command: list[str], kill_after_s: float | None) -> tuple[int | None, float]:
    """Run ``command``; SIGKILL it after ``kill_after_s`` if it is still running."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), kill_after_s or 600)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None, time.monotonic() - started
    assert proc.returncode == 0, err.decode()[-3000:]
    return proc.returncode, time.monotonic() - started


def outputs(out: Path):
    import anndata
    import pyarrow.parquet as pq

    obs = anndata.read_h5ad(out / ANNOTATED).obs
    return pq.read_table(out / PREDICTIONS), obs


async def test_five_sigkills_then_resume_equal_a_clean_run(
    pbmc_h5ad, tiny_checkpoint, build_stage, decode_stage, tmp_path
):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    # slow enough answers that each killed run does only part of the work
    stages, _ = fake_stages(build_stage, decode_stage, step_delay_s=0.1)
    stages.engine.reply = label_of
    app = create_app(GatewayConfig(), stages, default_registry())
    async with serving_on_loopback(app) as url:
        clean = tmp_path / "clean"
        _, clean_s = await run_until(annotate_command(pbmc_h5ad, clean, tiny_checkpoint, url), None)
        killed = tmp_path / "killed"
        command = annotate_command(pbmc_h5ad, killed, tiny_checkpoint, url)
        # from start-up to a quarter of a clean run: five kills cannot finish the job
        kill_points = [rng.uniform(0.5, 0.25 * clean_s) for _ in range(KILLS)]
        killed_running = 0
        for at in kill_points:
            status, _ = await run_until(command, at)
            killed_running += status is None
        shards_before_resume = len(list((killed / "shards").glob("part-*.parquet")))
        _, resume_s = await run_until(command, None)
    figures = {
        "seed": seed,
        "clean_run_s": round(clean_s, 1),
        "kill_points_s": [round(t, 2) for t in kill_points],
        "killed_while_running": killed_running,
        "shards_committed_before_resume": shards_before_resume,
        "resume_run_s": round(resume_s, 1),
    }
    save_figures("bulk_sigkill", figures)
    assert killed_running == KILLS, figures  # every kill landed mid-run
    clean_rows, clean_obs = outputs(clean)
    rows, obs = outputs(killed)
    assert rows.equals(clean_rows), f"seed {seed}"
    assert rows.column("row").to_pylist() == list(range(700))
    assert obs.equals(clean_obs), f"seed {seed}"
    assert not [p for p in (killed / "shards").iterdir() if not p.name.startswith("part-")]
