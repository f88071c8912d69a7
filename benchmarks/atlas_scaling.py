"""Bulk annotation of a wide atlas at 10k, 100k and 1M cells with the instant engine.

The atlas is `benchmarks.wide_atlas` (25,000 genes, 2,500 expressed per cell, CSR in a
backed-readable ``.h5ad``), generated under ``benchmarks/.work/atlas_scaling`` (kept
between runs, never committed) with banked rows so that a million cells generate at
disk speed. Each size runs as ``c2s annotate`` does in-process (`AnnotationJob`, local
mode, 200 genes per cell), in a child process of its own so that its peak RSS is its
own, over `serving.testing.FakeEngine` answering at once: only our own code costs
anything.

Per size (the medians of `REPEATS` runs, each in a fresh process): cells/s to the last
shard (``pipeline``) and end to end (with ``annotated.h5ad``, a copy of the input); cells
per CPU-second of the whole process, up to the last shard (``answering_cells_per_cpu_s``:
the job's checks, reading, ranking, token ids, shards, with the instant engine and
decoding included, so the driver's own work alone is at least this fast per core) and
with the outputs (``cells_per_cpu_s``); and peak RSS:
sampled until the last shard is committed (``answering_peak_rss_mib``), over the whole job
with the outputs (``peak_rss_mib``), and the process's maximum. Goals: 1M-cell cells/s >=
0.9x the 10k figure, 1M peak RSS <= 1.2x the 10k peak, >= 5,000 cells per CPU-second up to
the last shard.

``workers`` is the hook of the distributed mode (issue 15, item 2): 1 is this local run;
other counts are measured by `DISTRIBUTED` when a distributed runner is plugged in.

Run: ``.venv/bin/python -m benchmarks run --suite atlas_scaling [--quick]`` (10k and
100k with ``--quick``); the last line printed is JSON, also written to
``benchmarks/results/atlas_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.machine import REPO_ROOT
from benchmarks.suite import RESULTS_DIR, SuiteOptions, finish_record, log, start_record
from benchmarks.wide_atlas import EXPRESSED, N_GENES, write_wide_atlas

WORK_DIR = REPO_ROOT / "benchmarks" / ".work" / "atlas_scaling"
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
BANK_CELLS = 4096
N_GENES_PROMPT = 200
#: bytes per stored entry on disk (float32 value + int32 column)
ENTRY_BYTES = 8
SPEED_GOAL, RSS_GOAL = 0.9, 1.2
#: runs per size, each in a fresh process; a size's figures are the medians of its runs
#: (this VM's CPU-seconds for the same code move by up to 25% between idle runs)
REPEATS = {10_000: 5, 100_000: 3}
#: issue 15: the driver's own work (read, rank, build token ids, write shards) per core
CPU_SPEED_GOAL = 5_000
TOKENIZER_DIR = REPO_ROOT.parent / "shared" / "pythia-tokenizer"

#: ``workers -> measure(path, cells, workers) -> result`` for counts other than 1; the
#: distributed mode fills it in
DISTRIBUTED: dict[int, Callable[[Path, int, int], dict]] = {}


def atlas_bytes(cells: int) -> int:
    return cells * EXPRESSED * ENTRY_BYTES


def sizes_that_fit(sizes: tuple[int, ...]) -> tuple[list[int], list[str]]:
    """The sizes whose atlas and annotated copy fit the free disk, and notes on the rest."""
    free = shutil.disk_usage(WORK_DIR).free
    kept, notes = [], []
    for cells in sizes:
        path = atlas_path(cells)
        needed = (0 if path.exists() else atlas_bytes(cells)) + atlas_bytes(cells)
        if needed * 1.1 > free:
            notes.append(f"{cells:,} cells need {needed / 2**30:.0f} GiB; {free / 2**30:.0f} free")
            continue
        kept.append(cells)
        free -= needed - atlas_bytes(cells)  # the copy is removed after each run
    return kept, notes


def atlas_path(cells: int) -> Path:
    return WORK_DIR / f"wide_{cells}.h5ad"


def generate(cells: int) -> tuple[Path, float]:
    started = time.perf_counter()
    path = write_wide_atlas(atlas_path(cells), cells, bank_cells=BANK_CELLS)
    return path, time.perf_counter() - started


def measure_local(path: Path, cells: int) -> dict:
    """One size in a child process (`child_main`); its JSON result."""
    out = WORK_DIR / f"out-{cells}"
    command = [sys.executable, "-m", "benchmarks.atlas_scaling", "--child", str(path), str(out)]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=3600
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)  # the annotated copy is as large as the atlas
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"command": " ".join(command[1:])}


def median_figures(runs: list[dict]) -> dict:
    """One size's runs as one: the median of every number, and every run's cells per
    CPU-second (to the last shard) in order, to show the spread."""
    figures = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            figures[key] = statistics.median(r[key] for r in runs)
    return figures | {
        "repeats": len(runs),
        "answering_cells_per_cpu_s_runs": [r["answering_cells_per_cpu_s"] for r in runs],
    }


class PeakRss:
    """Samples this process's RSS every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float = 0.1) -> None:
        import psutil

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


class AnsweringPeak:
    """A job progress listener that keeps the peak RSS and the process's CPU time when the
    last shard is committed (`AnnotationJob` stops its listener before writing the
    outputs)."""

    def __init__(self, rss: PeakRss) -> None:
        self.rss = rss
        self.peak = 0
        self.cpu_s = 0.0

    def start(self, total_cells: int, done_cells: int) -> None:
        pass

    def advance(self, cells: int) -> None:
        pass

    def stop(self) -> None:
        self.cpu_s = time.process_time()
        self.peak = max(self.rss.peak, self.rss.process.memory_info().rss)


def child_main(path: Path, out: Path) -> None:
    """Annotate ``path`` into ``out`` with the instant engine; print the figures as JSON."""
    import asyncio

    from serving.bulk import AnnotateConfig, AnnotationJob, ExecutionConfig, PipelineRunner
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
    config = AnnotateConfig(
        input=path,
        out=out,
        n_genes=N_GENES_PROMPT,
        overwrite=True,
        execution=ExecutionConfig(
            mode="local", engine=EngineConfig(model=str(TOKENIZER_DIR)), model_dir=TOKENIZER_DIR
        ),
    )
    rss = PeakRss()
    answering = AnsweringPeak(rss)
    cpu_before, started = time.process_time(), time.perf_counter()
    job = AnnotationJob(config, PipelineRunner(stages, "fake-c2s"), progress=answering)
    result = asyncio.run(job.run())
    end_to_end = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    run = result.report["run"]
    peak = rss.stop()
    answering_cpu = answering.cpu_s - cpu_before
    figures = {
        "cells": run["annotated_cells"],
        "pipeline_s": run["elapsed_s"],
        "end_to_end_s": round(end_to_end, 3),
        "cells_per_s": round(run["annotated_cells"] / run["elapsed_s"], 1),
        "end_to_end_cells_per_s": round(run["annotated_cells"] / end_to_end, 1),
        "cpu_s": round(cpu, 3),
        "cells_per_cpu_s": round(run["annotated_cells"] / cpu, 1),
        "answering_cpu_s": round(answering_cpu, 3),
        "answering_cells_per_cpu_s": round(run["annotated_cells"] / answering_cpu, 1),
        "answering_peak_rss_mib": round(answering.peak / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "prompt_tokens": result.report["tokens"]["prompt"],
    }
    print(json.dumps(figures), flush=True)


def run(options: SuiteOptions, workers: tuple[int, ...] = (1,)) -> None:
    """The ``atlas_scaling`` suite: every size that fits the disk, for each worker count."""
    record = start_record("atlas_scaling", options)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    sizes, notes = sizes_that_fit(QUICK_SIZES if options.quick else SIZES)
    record |= {
        "benchmark": "c2s annotate in-process on the generated wide atlas, instant engine",
        "atlas": {"genes": N_GENES, "expressed_per_cell": EXPRESSED, "bank_cells": BANK_CELLS},
        "n_genes": N_GENES_PROMPT,
        "goals": {
            "speed_1m_vs_10k": SPEED_GOAL,
            "rss_1m_vs_10k": RSS_GOAL,
            "answering_cells_per_cpu_s": CPU_SPEED_GOAL,
        },
        "not_run": notes,
        "runs": [],
    }
    for cells in sizes:
        path, generate_s = generate(cells)
        for count in workers:
            log(f"atlas_scaling: {cells:,} cells, {count} worker(s)")
            if count == 1:
                figures = median_figures(
                    [measure_local(path, cells) for _ in range(REPEATS.get(cells, 1))]
                )
            elif count in DISTRIBUTED:
                figures = DISTRIBUTED[count](path, cells, count)
            else:
                figures = {"skipped": "no distributed runner plugged in"}
            record["runs"].append(
                {"cells": cells, "workers": count, "generate_s": round(generate_s, 1)} | figures
            )
    record["ratios"] = scaling_ratios(record["runs"])
    finish_record(record, options)


def scaling_ratios(runs: list[dict]) -> dict:
    """Largest size over 10k, per worker count: cells/s and peak RSS."""
    ratios = {}
    for count in sorted({r["workers"] for r in runs}):
        measured = [r for r in runs if r["workers"] == count and "cells_per_s" in r]
        small = next((r for r in measured if r["cells"] == SIZES[0]), None)
        if small is None or len(measured) < 2:
            continue
        large = max(measured, key=lambda r: r["cells"])
        ratios[str(count)] = {
            "cells": large["cells"],
            "speed": round(large["cells_per_s"] / small["cells_per_s"], 3),
            "peak_rss": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3),
            "max_rss": round(large["max_rss_mib"] / small["max_rss_mib"], 3),
        }
        if "answering_peak_rss_mib" in small and "answering_peak_rss_mib" in large:
            ratios[str(count)]["answering_peak_rss"] = round(
                large["answering_peak_rss_mib"] / small["answering_peak_rss_mib"], 3
            )
    return ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.atlas_scaling")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("INPUT", "OUT"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
    else:
        run(SuiteOptions(quick=args.quick, results_dir=RESULTS_DIR))
