"""One run of `benchmarks.atlas_scaling`, in a process of its own: the bulk job on the
wide atlas with the instant engine, in-process (``--child``) or distributed on a two-node
loopback Ray cluster it starts (``--distributed-child``). Prints its figures as JSON (the
last line).
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from benchmarks.atlas_scaling import N_GENES_PROMPT, TOKENIZER_DIR
from benchmarks.process_cpu import tree_cpu_seconds


class PeakRss:
    """Samples this process's RSS every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


class AtLastShard:
    """A job progress listener that reads ``cpu()`` (CPU-seconds) and ``snapshot()`` when
    the last shard is committed (`AnnotationJob` stops its listener before writing the
    outputs), and the cores kept busy since the job started answering."""

    def __init__(self, cpu: Callable[[], float], snapshot: Callable[[], dict] = dict) -> None:
        self.cpu, self.snapshot = cpu, snapshot
        self.figures: dict = {}
        self._started = (0.0, 0.0)

    def start(self, total_cells: int, done_cells: int) -> None:
        self._started = (self.cpu(), time.perf_counter())

    def advance(self, cells: int) -> None:
        pass

    def stop(self) -> None:
        cpu, wall = self.cpu(), time.perf_counter()
        busy = (cpu - self._started[0]) / max(wall - self._started[1], 1e-9)
        self.figures = self.snapshot() | {"cpu_s": cpu, "cores_busy": round(busy, 2)}


def child_main(path: Path, out: Path) -> None:
    """Annotate ``path`` into ``out`` with the instant engine; print the figures as JSON."""
    import asyncio

    from serving.bulk import AnnotationJob, ExecutionConfig, PipelineRunner
    from serving.bulk.heap import settle_heap
    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig
    from serving.testing.fake_engine import FakeEngine

    # before this process's first thread (the RSS sampler), as in `c2s annotate`, whose
    # job sets it before the threads it starts
    settle_heap()
    build = BuildStage.from_model(TOKENIZER_DIR)
    encoder = build.builder.encoder
    engine = FakeEngine(lambda ids: " B cell.", encoder.encode, encoder.decode)
    stages = LocalPipeline(build, engine, DecodeStage.from_model(TOKENIZER_DIR))
    config = job_config(
        path,
        out,
        ExecutionConfig(
            mode="local", engine=EngineConfig(model=str(TOKENIZER_DIR)), model_dir=TOKENIZER_DIR
        ),
    )
    rss = PeakRss()
    answering = AtLastShard(
        time.process_time, lambda: {"peak": max(rss.peak, rss.process.memory_info().rss)}
    )
    cpu_before, started = time.process_time(), time.perf_counter()
    job = AnnotationJob(config, PipelineRunner(stages, "fake-c2s"), progress=answering)
    result = asyncio.run(job.run())
    end_to_end = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    peak = rss.stop()
    answering_cpu = answering.figures["cpu_s"] - cpu_before
    figures = run_figures(result.report, end_to_end, cpu, answering_cpu) | {
        "answering_peak_rss_mib": round(answering.figures["peak"] / 2**20, 1),
        "cores_busy": answering.figures["cores_busy"],
        "peak_rss_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(figures), flush=True)


def distributed_child_main(path: Path, out: Path, workers: int) -> None:
    """Annotate ``path`` into ``out`` on a two-node loopback cluster started here, with
    ``workers`` range tasks and the instant engine actor; print the figures as JSON."""
    import asyncio

    from benchmarks.distributed_bench import BASE_PORT, peak_rss_mib, ray_worker_pids, reset_peaks
    from serving.bulk import ExecutionConfig
    from serving.bulk.config import DistributedConfig
    from serving.bulk.heap import settle_heap
    from serving.bulk.job import annotate
    from serving.testing.ray_cluster import loopback_cluster

    def peaks() -> dict:
        ray = [m for m in (peak_rss_mib(pid) for pid in ray_worker_pids()) if m is not None]
        return {"driver": peak_rss_mib("self"), "ray": max(ray, default=0.0)}

    settle_heap()
    with loopback_cluster(nodes=2, cpus_per_node=1, base_port=BASE_PORT) as address:
        execution = ExecutionConfig(
            mode="distributed",
            ray_address=address,
            model_dir=TOKENIZER_DIR,
            distributed=DistributedConfig(engine="instant", workers=workers, engine_cpus=0),
        )
        answering = AtLastShard(tree_cpu_seconds, peaks)
        reset_peaks(["self", *ray_worker_pids()])
        cpu_before, started = tree_cpu_seconds(), time.perf_counter()
        result = asyncio.run(annotate(job_config(path, out, execution), progress=answering))
        end_to_end = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu_before
        whole = peaks()
        ray_processes = len(ray_worker_pids())
    at_last = answering.figures
    figures = run_figures(result.report, end_to_end, cpu, at_last["cpu_s"] - cpu_before) | {
        "cores_busy": at_last["cores_busy"],
        "driver_peak_rss_mib": whole["driver"],
        "largest_ray_process_peak_rss_mib": whole["ray"],
        "answering_driver_peak_rss_mib": at_last["driver"],
        "answering_largest_ray_process_peak_rss_mib": at_last["ray"],
        # the goal is per process: the largest one's
        "answering_peak_rss_mib": max(at_last["driver"], at_last["ray"]),
        "peak_rss_mib": max(whole["driver"], whole["ray"]),
        "ray_processes": ray_processes,
    }
    print(json.dumps(figures), flush=True)


def job_config(path: Path, out: Path, execution):
    from serving.bulk import AnnotateConfig

    return AnnotateConfig(
        input=path, out=out, n_genes=N_GENES_PROMPT, overwrite=True, execution=execution
    )


def run_figures(report: dict, end_to_end_s: float, cpu_s: float, answering_cpu_s: float) -> dict:
    """A run's speeds: to the last shard and end to end, per second and per CPU-second."""
    cells, pipeline_s = report["run"]["annotated_cells"], report["run"]["elapsed_s"]
    return {
        "cells": cells,
        "pipeline_s": pipeline_s,
        "end_to_end_s": round(end_to_end_s, 3),
        "cells_per_s": round(cells / pipeline_s, 1),
        "end_to_end_cells_per_s": round(cells / end_to_end_s, 1),
        "cpu_s": round(cpu_s, 3),
        "cells_per_cpu_s": round(cells / cpu_s, 1),
        "answering_cpu_s": round(answering_cpu_s, 3),
        "answering_cells_per_cpu_s": round(cells / answering_cpu_s, 1),
        "prompt_tokens": report["tokens"]["prompt"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.atlas_runs")
    runs = parser.add_mutually_exclusive_group(required=True)
    runs.add_argument("--child", nargs=2, metavar=("INPUT", "OUT"))
    runs.add_argument("--distributed-child", nargs=3, metavar=("INPUT", "OUT", "WORKERS"))
    args = parser.parse_args()
    if args.child:
        child_main(*map(Path, args.child))
    else:
        source, out, workers = args.distributed_child
        distributed_child_main(Path(source), Path(out), int(workers))
