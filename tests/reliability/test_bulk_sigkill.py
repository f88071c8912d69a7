"""``c2s annotate`` SIGKILLed five times at random moments, then run to the end: its
output is identical to a clean run's. The job talks to a gateway over a deterministic
fake engine (loopback), so any difference comes from the resume, not from sampling."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest

from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.reliability.conftest import fake_stages, serving_on_loopback
from tests.reliability.load import save_figures

pytestmark = [pytest.mark.soak, pytest.mark.slow]
jobs = pytest.importorskip("serving.bulk", reason="the bulk job (serving/bulk) is not here")
from serving.bulk.outputs import ANNOTATED, PREDICTIONS  # noqa: E402

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


async def run_until(
    command: list[str], kill_when: Awaitable[None] | None = None
) -> tuple[bool, float]:
    """Run ``command``; SIGKILL it once ``kill_when`` is done, if it is still running.
    Returns whether it was killed, and how long it ran."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    finished = asyncio.ensure_future(proc.communicate())
    trigger = asyncio.ensure_future(kill_when or asyncio.Event().wait())
    await asyncio.wait({finished, trigger}, return_when=asyncio.FIRST_COMPLETED)
    trigger.cancel()
    if not finished.done():
        proc.kill()
        await finished
        return True, time.monotonic() - started
    assert proc.returncode == 0, finished.result()[1].decode()[-3000:]
    return False, time.monotonic() - started


class RequestCounter:
    """Counts the prompt builds the gateway runs: how far a job has got."""

    def __init__(self, stages) -> None:
        self.count, self.first_at, self._build = 0, 0.0, stages.build
        stages.build = self.build

    async def build(self, *args, **kwargs):
        self.count += 1
        self.first_at = self.first_at or time.monotonic()
        return await self._build(*args, **kwargs)

    async def beyond(self, count: int) -> None:
        while self.count <= count:
            await asyncio.sleep(0.01)


def outputs(out: Path):
    import anndata
    import pyarrow.parquet as pq

    obs = anndata.read_h5ad(out / ANNOTATED).obs
    return pq.read_table(out / PREDICTIONS), obs


async def after(event: Awaitable[None], delay_s: float) -> None:
    await event
    await asyncio.sleep(delay_s)


async def test_five_sigkills_then_resume_equal_a_clean_run(
    pbmc_h5ad, tiny_checkpoint, build_stage, decode_stage, tmp_path
):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    # slow enough answers that each killed run does only part of the work
    stages, _ = fake_stages(build_stage, decode_stage, step_delay_s=0.1)
    stages.engine.reply = label_of
    requests = RequestCounter(stages)
    app = create_app(GatewayConfig(), stages, default_registry())
    async with serving_on_loopback(app) as url:
        clean, killed = tmp_path / "clean", tmp_path / "killed"
        started = time.monotonic()
        _, clean_s = await run_until(annotate_command(pbmc_h5ad, clean, tiny_checkpoint, url))
        work_s = clean_s - (requests.first_at - started)  # the clean run less its start-up
        command = annotate_command(pbmc_h5ad, killed, tiny_checkpoint, url)
        kill_delays, killed_running = [], 0
        for kill in range(KILLS):
            # the first kill lands anywhere in start-up; the others once the run is at work,
            # within a fifth of a clean run's work, so that five kills cannot finish the job
            if kill == 0:
                delay, event = rng.uniform(0.2, 3.0), asyncio.sleep(0)
            else:
                delay, event = rng.uniform(0.0, 0.2 * work_s), requests.beyond(requests.count)
            kill_delays.append(round(delay, 2))
            killed_running += (await run_until(command, after(event, delay)))[0]
        shards_before_resume = len(list((killed / "shards").glob("part-*.parquet")))
        _, resume_s = await run_until(command)
    figures = {
        "seed": seed,
        "clean_run_s": round(clean_s, 1),
        "clean_work_s": round(work_s, 1),
        "kill_delays_s": kill_delays,
        "killed_while_running": killed_running,
        "shards_committed_before_resume": shards_before_resume,
        "resume_run_s": round(resume_s, 1),
    }
    save_figures("bulk_sigkill", figures)
    assert killed_running == KILLS, figures  # every kill landed mid-run
    assert shards_before_resume >= 1, figures  # and some after work was committed
    clean_rows, clean_obs = outputs(clean)
    rows, obs = outputs(killed)
    assert rows.equals(clean_rows), f"seed {seed}"
    assert rows.column("row").to_pylist() == list(range(700))
    assert obs.equals(clean_obs), f"seed {seed}"
    assert not [p for p in (killed / "shards").iterdir() if not p.name.startswith("part-")]
