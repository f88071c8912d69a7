"""The distributed mode on a two-node Ray cluster on this machine (loopback), with the
instant engine: the same shard files as a local run, through a worker's SIGKILL and
through the driver's. One module-wide cluster; the real engine's test is marked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotateConfig, AnnotationJob, ExecutionConfig, PipelineRunner
from serving.bulk.config import DistributedConfig
from serving.bulk.distributed.ranges import pending_ranges, rng_states
from serving.bulk.job import annotate
from serving.bulk.plan import ShardPlan, single_cell_plan
from serving.testing.ray_cluster import loopback_cluster
from tests.jobs.conftest import small_adata
from tests.jobs.fakes import job_config
from tokenizer_ext import open_expression, rank_csr

ray = pytest.importorskip("ray")

#: this module's ports (the brief's range for it): the head's GCS, then each node's
BASE_PORT = 18300
REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"use_raw": True, "n_genes": 50, "shard_cells": 32, "template_index": "random"}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        pytest.skip("a Ray cluster is already attached to this process")
    with loopback_cluster(nodes=2, cpus_per_node=2, base_port=BASE_PORT) as address:
        yield address


@pytest.fixture(scope="module")
def local_run(pbmc_path, stages, tmp_path_factory) -> Path:
    """The local run every distributed run must reproduce, file for file."""
    out = tmp_path_factory.mktemp("local")
    # no model name given: the engine's own ("fake"), as a distributed run writes it
    asyncio.run(AnnotationJob(job_config(pbmc_path, out, **SETTINGS), PipelineRunner(stages)).run())
    return out


def distributed_config(input_path: Path, out: Path, address: str, **options) -> AnnotateConfig:
    from tests.jobs.fakes import TOKENIZER_DIR

    distributed = DistributedConfig(engine="instant", workers=2, **options)
    execution = ExecutionConfig(
        mode="distributed",
        ray_address=address,
        model_dir=TOKENIZER_DIR,
        request_cells=8,
        distributed=distributed,
    )
    return AnnotateConfig(input=input_path, out=out, execution=execution, **SETTINGS)


def assert_same_shards(out: Path, local: Path) -> None:
    mine = sorted(p.name for p in (out / "shards").iterdir())
    assert mine == sorted(p.name for p in (local / "shards").iterdir())
    for name in mine:
        assert (out / "shards" / name).read_bytes() == (local / "shards" / name).read_bytes(), name
    rows = pq.read_table(out / "shards").column("row").to_pylist()
    assert sorted(rows) == list(range(700))  # every cell once: none lost, none twice


def answering_workers() -> list[int]:
    """Pids of Ray workers running a range task now (Ray titles them by their task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().startswith(b"ray::answer_range"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# ---------------------------------------------------------------- the RNG, without Ray


@pytest.mark.parametrize("layout", ["csr", "dense"])
def test_a_range_ranked_from_its_replayed_state_matches_the_whole_file(write_h5ad, layout):
    adata = small_adata(60, layout=layout)
    # rows 3-8 empty: stored zeros (CSR) consume the RNG and are dropped, dense zeros are
    # never stored
    if layout == "csr":
        adata.X.data[adata.X.indptr[3] : adata.X.indptr[9]] = 0
    else:
        adata.X[3:9] = 0
    path = write_h5ad(ad.AnnData(adata.X, obs=adata.obs, var=adata.var))
    with open_expression(path) as source:
        whole = rank_csr(
            source.read_rows(0, 60),
            np.arange(10),
            tie_break="c2s",
            rng=np.random.RandomState(7),
        )
        for start, state in zip(
            [0, 5, 37], rng_states(path, [0, 5, 37], 7, layer=None, use_raw=False), strict=True
        ):
            rng = np.random.RandomState()
            rng.set_state(state)
            part = rank_csr(source.read_rows(start, 60), np.arange(10), tie_break="c2s", rng=rng)
            assert np.array_equal(part.words, whole.select(np.arange(start, 60)).words)


def test_pending_shards_become_ranges_without_gaps():
    plan = single_cell_plan(100, 10)
    ranges = list(pending_ranges(plan, done={2, 3, 7}, shards_per_range=3))
    assert [[s.index for s in r.shards] for r in ranges] == [[0, 1], [4, 5, 6], [8, 9]]
    assert [(r.start, r.stop) for r in ranges] == [(0, 20), (40, 70), (80, 100)]


def test_ranges_are_made_as_they_are_asked_for():
    # a shard's row arrays cost 16 bytes a cell: the driver must not hold an atlas's
    made = []

    class CountedShards(list):
        def __iter__(self):
            for shard in single_cell_plan(10**6, 256).shards:
                made.append(shard.index)
                yield shard

    plan = ShardPlan(CountedShards(), 10**6)
    ranges = pending_ranges(plan, done={1}, shards_per_range=4)
    first, second = next(ranges), next(ranges)
    assert [s.index for s in first.shards] == [0]
    assert [s.index for s in second.shards] == [2, 3, 4, 5]
    assert made == [0, 1, 2, 3, 4, 5]


class RecordingHost:
    """An `EngineHost` handle's calling convention over the instant engine, counting calls."""

    def __init__(self, engine, fail: bool = False) -> None:
        self.engine, self.fail, self.calls = engine, fail, []
        self.complete_many = self

    def remote(self, requests):
        self.calls.append(len(requests))

        async def call():
            if self.fail:
                raise RuntimeError("engine actor lost")
            return [await self.engine.complete(ids, params) for ids, params in requests]

        return call()


async def test_a_batchs_requests_reach_an_engine_actor_in_one_call(stages):
    from serving.bulk.distributed.engines import ActorEngine
    from serving.engine import GenerationParams

    hosts = [RecordingHost(stages.engine), RecordingHost(stages.engine)]
    engine = ActorEngine(hosts, stages.engine.limits)
    params = GenerationParams.greedy(max_tokens=4)
    first = await asyncio.gather(*(engine.complete([7, i], params) for i in range(20)))
    second = await asyncio.gather(*(engine.complete([8, i], params) for i in range(5)))
    assert [h.calls for h in hosts] == [[20], [5]]  # one call per batch, round robin
    direct = [await stages.engine.complete([7, i], params) for i in range(20)]
    assert [c.outputs[0].text for c in first] == [c.outputs[0].text for c in direct]
    assert len(second) == 5
    broken = ActorEngine([RecordingHost(stages.engine, fail=True)], stages.engine.limits)
    results = await asyncio.gather(
        *(broken.complete([9, i], params) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


# ---------------------------------------------------------------- on the cluster


async def test_the_distributed_run_writes_the_local_runs_shards(
    cluster, pbmc_path, local_run, tmp_path
):
    config = distributed_config(pbmc_path, tmp_path, cluster, shards_per_task=3)
    result = await annotate(config)
    assert_same_shards(tmp_path, local_run)
    assert result.report["cells"]["total"] == 700
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["finished"] and progress["done_shards"] == 22
    local_obs = ad.read_h5ad(local_run / "annotated.h5ad").obs
    mine = ad.read_h5ad(tmp_path / "annotated.h5ad").obs
    assert mine["c2s_prediction"].equals(local_obs["c2s_prediction"])


async def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster, pbmc_path, local_run, tmp_path
):
    config = distributed_config(
        pbmc_path, tmp_path, cluster, shards_per_task=1, instant_delay_s=0.01
    )
    run = asyncio.create_task(annotate(config))

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if pids := answering_workers():
                os.kill(pids[0], signal.SIGKILL)
                return
            time.sleep(0.05)
        raise AssertionError("no range task ever ran")

    await asyncio.to_thread(kill_a_worker)
    assert not run.done()  # killed mid-run
    result = await run
    assert result.report["cells"]["total"] == 700
    assert_same_shards(tmp_path, local_run)


async def test_a_run_resumes_after_its_driver_is_killed(cluster, pbmc_path, local_run, tmp_path):
    config = distributed_config(
        pbmc_path, tmp_path, cluster, shards_per_task=1, instant_delay_s=0.01
    )
    config_file = tmp_path.parent / f"{tmp_path.name}-config.json"
    config_file.write_text(config.model_dump_json())
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(config_file)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    progress = tmp_path / "progress.json"

    def some_shards_done() -> dict:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None:
            if progress.exists():
                record = json.loads(progress.read_text())
                if record["done_shards"] >= 3:
                    return record
            time.sleep(0.05)
        raise AssertionError(f"the driver committed too little before it ended ({driver.poll()})")

    try:
        record = await asyncio.to_thread(some_shards_done)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    assert not record["finished"]
    result = await annotate(config)
    assert result.report["run"]["resumed_cells"] >= 3 * 32
    assert_same_shards(tmp_path, local_run)


@pytest.mark.slow  # Serve's controller and replicas start in about 40 s here
async def test_the_serve_apps_replicas_answer_a_distributed_run(
    cluster, pbmc_path, local_run, tmp_path
):
    from ray import serve

    from serving.testing.instant_serve import instant_app
    from tests.jobs.fakes import TOKENIZER_DIR

    serve.start(proxy_location="Disabled")
    try:
        serve.run(instant_app(TOKENIZER_DIR), name="c2s-instant", route_prefix=None)
        config = distributed_config(pbmc_path, tmp_path, cluster, shards_per_task=4)
        execution = config.execution.model_copy(
            update={
                "ray_app": "c2s-instant",
                "distributed": DistributedConfig(engine="serve", workers=2, shards_per_task=4),
            }
        )
        await annotate(config.model_copy(update={"execution": execution}))
    finally:
        serve.shutdown()
    assert_same_shards(tmp_path, local_run)


@pytest.mark.engine
@pytest.mark.slow
async def test_vllm_engine_actors_of_the_demo_checkpoint_answer_every_cell(
    cluster, pbmc_adata, tmp_path
):
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage
    from serving.engine import EngineConfig
    from serving.ray_serve.config import DEMO_MODEL_DIR
    from tokenizer_ext import cell_sentences

    if not (DEMO_MODEL_DIR / "config.json").is_file():
        pytest.skip("the demo checkpoint is not built")
    path = tmp_path / "pbmc48.h5ad"
    pbmc_adata[:48].copy().write_h5ad(path)
    execution = ExecutionConfig(
        mode="distributed",
        ray_address=cluster,
        engine=EngineConfig(model=str(DEMO_MODEL_DIR), kv_cache_gib=1),
        model_dir=DEMO_MODEL_DIR,
        request_cells=8,
        distributed=DistributedConfig(engine="vllm", workers=2, shards_per_task=1),
    )
    config = AnnotateConfig(
        input=path, out=tmp_path / "out", use_raw=True, shard_cells=16, execution=execution
    )
    await annotate(config)
    rows = pq.read_table(tmp_path / "out" / "shards").sort_by("row").to_pylist()
    # the prompts are the ones this process builds for the same cells, in row order
    build = BuildStage.from_model(DEMO_MODEL_DIR)
    jobs = [
        PromptRequest(
            "cell_type_prediction", {"cell": s, "n_genes": 200, "organism": "Homo sapiens"}
        )
        for s in cell_sentences(path, use_raw=True, top_k=200)
    ]
    assert [r["prompt_tokens"] for r in rows] == [p.prompt_tokens for p in build.build(jobs)]
    assert {r["model"] for r in rows} == {"c2s-demo-pythia"}
    assert all(r["output_tokens"] > 0 and r["finish_reason"] for r in rows)
    assert sum(r["status"] == "ok" for r in rows) >= 40


DRIVER = """
import asyncio, sys
from pathlib import Path
from serving.bulk import AnnotateConfig
from serving.bulk.job import annotate
from serving.testing.ray_cluster import keep_loopback
keep_loopback()
asyncio.run(annotate(AnnotateConfig.model_validate_json(Path(sys.argv[1]).read_text())))
"""
