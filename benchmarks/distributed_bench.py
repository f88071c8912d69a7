"""``c2s annotate --mode distributed`` against a local run of the same cells.

Two workloads, each on a two-node Ray cluster on this machine (loopback,
`serving.testing.ray_cluster`), one CPU per node:

- ``instant``: the generated wide atlas (`benchmarks.wide_atlas`: 25,000 genes, 2,500
  expressed per cell) with the instant engine (`serving.testing.fake_engine`), so only
  the job's own work costs anything: in-process, then distributed with 1 and 2 workers
  (row-range tasks; the engine actor asks no CPU), after an unmeasured run that starts
  the cluster's workers;
- ``demo``: the demo checkpoint (models/c2s-demo-pythia) on 10,000 cells of
  pbmc68k_reduced (its 700 cells repeated): in-process vLLM, then distributed with one
  vLLM engine actor on one node and one worker on the other.

Every distributed run's shard files are checked byte for byte against the local run's.
Cells/s are cells over the run's own time (``report.run.elapsed_s``: engine start
excluded). Peak RSS per process is each process's VmHWM, reset before the run
(``/proc/PID/clear_refs``): the driver, and the largest of the Ray workers.

Run under ``flock /tmp/c2s-bench.lock``: ``.venv/bin/python -m benchmarks.distributed_bench
[--part instant|demo] [--cells N] [--out FILE]``; writes ``benchmarks/results/distributed.json``
(a part run alone keeps the other part's figures). ``make bench`` runs it as the suite
``distributed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from benchmarks.checkpoints import PYTHIA_TOKENIZER_DIR
from benchmarks.machine import REPO_ROOT, machine_info
from benchmarks.suite import RESULTS_DIR, log

WORK_DIR = REPO_ROOT / "benchmarks" / ".work" / "distributed"
DEMO_DIR = REPO_ROOT / "models" / "c2s-demo-pythia"
#: the brief's port range for this benchmark's cluster
BASE_PORT = 18350


def ray_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            continue


def peak_rss_mib(pid: int | str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def measured(run) -> dict:
    """Run ``run()`` (a job's coroutine function) with the peaks of every process reset."""
    reset_peaks(["self", *ray_worker_pids()])
    started = time.perf_counter()
    result = await run()
    wall = time.perf_counter() - started
    workers = [p for p in (peak_rss_mib(pid) for pid in ray_worker_pids()) if p is not None]
    run_s = result.report["run"]["elapsed_s"]
    cells = result.report["cells"]["total"]
    return {
        "cells": cells,
        "run_s": round(run_s, 2),
        "wall_s": round(wall, 2),
        "cells_per_s": round(cells / run_s, 1),
        "driver_peak_rss_mib": peak_rss_mib("self"),
        "largest_ray_process_peak_rss_mib": max(workers, default=None),
    }


def same_shards(out: Path, local: Path) -> bool:
    mine = sorted((out / "shards").iterdir())
    theirs = sorted((local / "shards").iterdir())
    return [p.name for p in mine] == [p.name for p in theirs] and all(
        a.read_bytes() == b.read_bytes() for a, b in zip(mine, theirs, strict=True)
    )


def config(path: Path, out: Path, execution, **settings):
    from serving.bulk import AnnotateConfig

    return AnnotateConfig(input=path, out=out, overwrite=True, execution=execution, **settings)


async def instant_part(address: str, cells: int) -> dict:
    from benchmarks.wide_atlas import write_wide_atlas
    from serving.bulk import AnnotationJob, ExecutionConfig, PipelineRunner
    from serving.bulk.config import DistributedConfig
    from serving.bulk.job import annotate
    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig
    from serving.testing.fake_engine import instant_engine

    path = write_wide_atlas(WORK_DIR / f"wide_{cells}.h5ad", cells)
    local_out = WORK_DIR / "instant-local"
    stages = LocalPipeline(
        BuildStage.from_model(PYTHIA_TOKENIZER_DIR),
        instant_engine(PYTHIA_TOKENIZER_DIR),
        DecodeStage.from_model(PYTHIA_TOKENIZER_DIR),
    )
    local_execution = ExecutionConfig(
        mode="local", engine=EngineConfig(model=str(PYTHIA_TOKENIZER_DIR))
    )
    log(f"instant: local, {cells} cells")
    runs = {
        "local": await measured(
            lambda: AnnotationJob(
                config(path, local_out, local_execution), PipelineRunner(stages)
            ).run()
        )
    }

    def execution(workers: int) -> ExecutionConfig:
        return ExecutionConfig(
            mode="distributed",
            ray_address=address,
            model_dir=PYTHIA_TOKENIZER_DIR,
            distributed=DistributedConfig(engine="instant", workers=workers, engine_cpus=0),
        )

    # both nodes' Ray workers start and import once, before either measured run: otherwise
    # the first run (1 worker) pays the cluster's cold start alone
    log("instant: warming the cluster's workers")
    await annotate(config(path, WORK_DIR / "instant-warm", execution(2)))
    for workers in (1, 2):
        out = WORK_DIR / f"instant-{workers}w"
        log(f"instant: distributed, {workers} worker(s)")
        record = await measured(lambda w=workers, o=out: annotate(config(path, o, execution(w))))
        record["same_shards_as_local"] = same_shards(out, local_out)
        runs[f"distributed_{workers}_workers"] = record
    one, two = runs["distributed_1_workers"], runs["distributed_2_workers"]
    return {
        "input": f"wide atlas, {cells} cells x 25,000 genes, 2,500 expressed per cell",
        "engine": "instant (serving.testing.fake_engine.instant_engine)",
        "runs": runs,
        "two_over_one_workers": round(two["cells_per_s"] / one["cells_per_s"], 2),
    }


async def demo_part(address: str, cells: int) -> dict:
    import anndata as ad
    import numpy as np
    import scanpy as sc

    from serving.bulk import ExecutionConfig
    from serving.bulk.config import DistributedConfig
    from serving.bulk.job import annotate
    from serving.engine import EngineConfig

    path = WORK_DIR / f"pbmc_tiled_{cells}.h5ad"
    if not path.exists():
        pbmc = sc.datasets.pbmc68k_reduced()
        tiled = ad.concat([pbmc.raw.to_adata()] * (cells // pbmc.n_obs + 1))[:cells].copy()
        tiled.obs_names = [f"cell{i}" for i in range(cells)]
        tiled.X = tiled.X.astype(np.float32)
        tiled.write_h5ad(path)
    engine = EngineConfig.for_offline_job(str(DEMO_DIR), kv_cache_gib=2)
    local_out, dist_out = WORK_DIR / "demo-local", WORK_DIR / "demo-distributed"
    log(f"demo: local, {cells} cells")
    runs = {
        "local": await measured(
            lambda: annotate(config(path, local_out, ExecutionConfig(mode="local", engine=engine)))
        )
    }
    execution = ExecutionConfig(
        mode="distributed",
        ray_address=address,
        engine=engine,
        model_dir=DEMO_DIR,
        distributed=DistributedConfig(engine="vllm", workers=1, engine_cpus=1),
    )
    log("demo: distributed, one vLLM engine actor, one worker")
    record = await measured(lambda: annotate(config(path, dist_out, execution)))
    record["same_shards_as_local"] = same_shards(dist_out, local_out)
    runs["distributed"] = record
    return {
        "input": f"pbmc68k_reduced .raw repeated to {cells} cells, 200 genes",
        "engine": "vLLM CPU, models/c2s-demo-pythia (local in-process; distributed: an actor)",
        "runs": runs,
        "distributed_over_local": round(record["cells_per_s"] / runs["local"]["cells_per_s"], 2),
    }


async def main(args: argparse.Namespace) -> dict:
    from serving.testing.ray_cluster import loopback_cluster

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(
        benchmark="c2s annotate --mode distributed vs in-process, same cells",
        command="flock /tmp/c2s-bench.lock .venv/bin/python -m benchmarks.distributed_bench",
        machine=machine_info(),
        cluster="2 Ray nodes on loopback (ray.cluster_utils.Cluster), 1 CPU each",
    )
    parts = {"instant": instant_part, "demo": demo_part}
    with loopback_cluster(nodes=2, cpus_per_node=1, base_port=BASE_PORT) as address:
        for name, part in parts.items():
            if args.part in (None, name):
                record[name] = await part(address, args.cells or 10_000)
                # each part's figures are kept as soon as they exist
                record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                path.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["instant", "demo"])
    parser.add_argument("--cells", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "distributed.json")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
