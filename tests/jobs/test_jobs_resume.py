"""A run killed at any moment resumes and ends with every cell exactly once, and with the
same rows as a run that was never interrupted."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotationJob, ResumeMismatch
from serving.bulk.store import SHARDS
from tests.jobs.fakes import fake_runner, job_config

REPO_ROOT = Path(__file__).resolve().parents[2]
#: one shard in flight at a time, a few fake decode steps each: many commit points
SETTINGS = {"use_raw": True, "shard_cells": 40, "execution": {"max_inflight_cells": 40}}
KILLS_MID_RUN = 3


def shard_files(out: Path) -> list[str]:
    folder = out / SHARDS
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def start_worker(config_path: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            # 0.1 s a token: a shard lasts about half a second even on an idle machine, so
            # every kill lands while the job runs
            [sys.executable, "-m", "tests.jobs.worker", str(config_path), "--step-delay", "0.1"],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def kill(worker: subprocess.Popen) -> bool:
    """SIGKILL the worker; whether it was still running."""
    running = worker.poll() is None
    if running:
        os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    return running


def wait_for_new_shard(worker: subprocess.Popen, out: Path, seen: int, limit_s: float = 60):
    deadline = time.monotonic() + limit_s
    while worker.poll() is None and len(shard_files(out)) <= seen:
        if time.monotonic() > deadline:
            pytest.fail("the worker committed no shard in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(pbmc_path, tmp_path_factory):
    config = job_config(pbmc_path, tmp_path_factory.mktemp("whole") / "out", **SETTINGS)
    result = asyncio.run(AnnotationJob(config, fake_runner()).run())
    return pq.read_table(result.files["predictions"])


@pytest.mark.slow
async def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(
    pbmc_path, tmp_path, uninterrupted, stages
):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    out = tmp_path / "out"
    config = job_config(pbmc_path, out, **SETTINGS)
    config_path = tmp_path / "config.json"
    config_path.write_text(config.model_dump_json())
    log = tmp_path / "worker.log"
    killed_while_running = 0
    # the first kill lands anywhere in start-up; the next ones after a shard commit
    worker = start_worker(config_path, log)
    time.sleep(rng.uniform(0.2, 3.0))
    killed_while_running += kill(worker)
    for _ in range(KILLS_MID_RUN):
        worker = start_worker(config_path, log)
        wait_for_new_shard(worker, out, len(shard_files(out)))
        time.sleep(rng.uniform(0.0, 0.4))
        killed_while_running += kill(worker)
    assert killed_while_running >= 2, f"seed {seed}: {log.read_text()[-2000:]}"
    done_before = len([f for f in shard_files(out) if f.startswith("part-")])
    assert done_before >= 1, f"seed {seed}"
    result = await AnnotationJob(config, fake_runner(stages)).run()
    rows = pq.read_table(result.files["predictions"])
    assert rows.equals(uninterrupted), f"seed {seed}"
    assert rows.column("row").to_pylist() == list(range(700))
    assert result.report["run"]["resumed_cells"] >= 40 * done_before - 40
    assert all(f.startswith("part-") for f in shard_files(out)), "temporary files were left"


class FailingRunner:
    """Answers ``good_calls`` batches, then fails: an engine that dies mid-run."""

    def __init__(self, runner, good_calls: int) -> None:
        self.runner, self.calls, self.good_calls = runner, 0, good_calls

    async def max_model_len(self) -> int:
        return await self.runner.max_model_len()

    async def run(self, task, inputs, templates):
        self.calls += 1
        if self.calls > self.good_calls:
            raise RuntimeError("the engine died")
        return await self.runner.run(task, inputs, templates)


async def test_groups_resume_after_a_failure_with_each_cell_once(pbmc_path, tmp_path, stages):
    settings = {
        "task": "multi_cell_type_prediction",
        "group_key": "louvain",
        "use_raw": True,
        "shard_cells": 60,
        "execution": {"max_inflight_cells": 60},
    }
    whole = await AnnotationJob(
        job_config(pbmc_path, tmp_path / "whole", **settings), fake_runner(stages)
    ).run()
    config = job_config(pbmc_path, tmp_path / "out", **settings)
    with pytest.raises(RuntimeError, match="engine died"):
        await AnnotationJob(config, FailingRunner(fake_runner(stages), good_calls=6)).run()
    committed = shard_files(tmp_path / "out")
    assert committed and len(committed) < whole.report["groups"]["groups"]
    resumed = await AnnotationJob(config, fake_runner(stages)).run()
    assert resumed.report["run"]["resumed_cells"] > 0
    expected = pq.read_table(whole.files["predictions"])
    assert pq.read_table(resumed.files["predictions"]).equals(expected)


async def test_other_settings_refuse_to_resume_unless_overwritten(pbmc_path, tmp_path, stages):
    out = tmp_path / "out"
    await AnnotationJob(
        job_config(pbmc_path, out, use_raw=True, n_genes=20), fake_runner(stages)
    ).run()
    other = job_config(pbmc_path, out, use_raw=True, n_genes=30)
    with pytest.raises(ResumeMismatch, match="n_genes: 20 -> 30") as error:
        await AnnotationJob(other, fake_runner(stages)).run()
    assert "--overwrite" in str(error.value)
    fresh = other.model_copy(update={"overwrite": True})
    result = await AnnotationJob(fresh, fake_runner(stages)).run()
    assert result.report["run"]["resumed_cells"] == 0


async def test_torn_and_temporary_files_are_redone(pbmc_path, tmp_path, stages):
    config = job_config(pbmc_path, tmp_path / "out", **SETTINGS)
    first = await AnnotationJob(config, fake_runner(stages)).run()
    shards = tmp_path / "out" / SHARDS
    (shards / "part-000003.parquet").write_bytes(b"not parquet")
    (shards / ".part-000004.parquet.tmp-999").write_bytes(b"half a shard")
    again = await AnnotationJob(config, fake_runner(stages)).run()
    assert again.report["run"]["annotated_cells"] == 40
    assert not (shards / ".part-000004.parquet.tmp-999").exists()
    assert pq.read_table(again.files["predictions"]).equals(
        pq.read_table(first.files["predictions"])
    )
