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

Each size also runs distributed (``c2s annotate --mode distributed``, issue 15) on 1 and 2
workers: a child process starts a two-node Ray cluster on loopback (one CPU per node, as
`benchmarks.distributed_bench`), the range tasks read the same file, and the engine
actor is the instant one (`serving.testing.fake_engine.instant_engine`, asking no CPU).
Per run: cells/s to the last shard and end to end, cells per CPU-second of every process
of the run (driver, Ray workers, raylets, GCS), and peak RSS per process (the driver's
and the largest Ray process's VmHWM, to the last shard and over the whole job). Both runs'
shards are compared byte for byte. Goals as above per worker count, and 2 workers >= 1.7x
one (`WORKER_GOAL`).

Run: ``.venv/bin/python -m benchmarks run --suite atlas_scaling [--quick]`` (10k and
100k, local only, with ``--quick``); the last line printed is JSON, also written to
``benchmarks/results/atlas_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
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

#: worker counts of the distributed runs, and the goal of the largest over one
WORKERS = (1, 2)
WORKER_GOAL = 1.7


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
    """One size in-process, in a child process (`benchmarks.atlas_runs.child_main`);
    its JSON result."""
    out = WORK_DIR / f"out-{cells}"
    return _child(["--child", str(path), str(out)], out, keep_shards=False)


def measure_distributed(path: Path, cells: int, workers: int) -> dict:
    """One size distributed on ``workers`` workers, in a child process that starts its
    own cluster (`benchmarks.atlas_runs.distributed_child_main`); its JSON result, and
    whether its shards equal the 1-worker run's (kept until the size is done)."""
    out = WORK_DIR / f"out-{cells}-{workers}w"
    figures = _child(
        ["--distributed-child", str(path), str(out), str(workers)], out, keep_shards=True
    )
    first = WORK_DIR / f"out-{cells}-1w"
    if workers != 1 and first.exists():
        from benchmarks.distributed_bench import same_shards

        figures["same_shards_as_1_worker"] = same_shards(out, first)
    return figures


def _child(args: list[str], out: Path, *, keep_shards: bool) -> dict:
    """Run `benchmarks.atlas_runs` with ``args``; its last line as JSON. ``out`` is
    removed, but for its shards when kept (the annotated copy is as large as the atlas)."""
    command = [sys.executable, "-m", "benchmarks.atlas_runs", *args]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=3600
        )
    finally:
        for entry in out.iterdir() if out.exists() else ():
            if not (keep_shards and entry.name == "shards"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"command": " ".join(command[1:])}


def drop_outputs(cells: int) -> None:
    for out in WORK_DIR.glob(f"out-{cells}*"):
        shutil.rmtree(out, ignore_errors=True)


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


def run(options: SuiteOptions) -> None:
    """The ``atlas_scaling`` suite: every size that fits the disk, in-process and (not
    with ``quick``) distributed on each of `WORKERS`."""
    record = start_record("atlas_scaling", options)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    sizes, notes = sizes_that_fit(QUICK_SIZES if options.quick else SIZES)
    record |= {
        "benchmark": "c2s annotate on the generated wide atlas, instant engine: in-process, "
        "and distributed on a two-node loopback Ray cluster",
        "atlas": {"genes": N_GENES, "expressed_per_cell": EXPRESSED, "bank_cells": BANK_CELLS},
        "n_genes": N_GENES_PROMPT,
        "goals": {
            "speed_1m_vs_10k": SPEED_GOAL,
            "rss_1m_vs_10k": RSS_GOAL,
            "answering_cells_per_cpu_s": CPU_SPEED_GOAL,
            "workers_2_vs_1": WORKER_GOAL,
        },
        "not_run": notes,
        "runs": [],
    }
    for cells in sizes:
        path, generate_s = generate(cells)
        head = {"cells": cells, "generate_s": round(generate_s, 1)}
        log(f"atlas_scaling: {cells:,} cells, in-process")
        runs = [measure_local(path, cells) for _ in range(REPEATS.get(cells, 1))]
        record["runs"].append(head | {"mode": "local", "workers": 1} | median_figures(runs))
        for workers in () if options.quick else WORKERS:
            log(f"atlas_scaling: {cells:,} cells, distributed, {workers} worker(s)")
            figures = measure_distributed(path, cells, workers)
            record["runs"].append(head | {"mode": "distributed", "workers": workers} | figures)
        drop_outputs(cells)
    record["ratios"] = scaling_ratios(record["runs"])
    record["worker_scaling"] = worker_scaling(record["runs"], record["machine"]["usable_cpus"])
    finish_record(record, options)


def run_label(run: dict) -> str:
    """``in-process``, or ``distributed, N worker(s)``."""
    if run.get("mode", "local") == "local":
        return "in-process"
    return f"distributed, {run['workers']} worker{'s' if run['workers'] != 1 else ''}"


def scaling_ratios(runs: list[dict]) -> dict:
    """Largest size over 10k, per setup (`run_label`): cells/s and peak RSS."""
    ratios = {}
    for label in dict.fromkeys(run_label(r) for r in runs):
        measured = [r for r in runs if run_label(r) == label and "cells_per_s" in r]
        small = next((r for r in measured if r["cells"] == SIZES[0]), None)
        if small is None or len(measured) < 2:
            continue
        large = max(measured, key=lambda r: r["cells"])
        ratios[label] = {
            "cells": large["cells"],
            "speed": round(large["cells_per_s"] / small["cells_per_s"], 3),
            "peak_rss": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3),
        }
        for key in ("max_rss", "answering_peak_rss", "driver_peak_rss"):
            if f"{key}_mib" in small and f"{key}_mib" in large:
                ratios[label][key] = round(large[f"{key}_mib"] / small[f"{key}_mib"], 3)
    return ratios


def worker_scaling(runs: list[dict], cores: int) -> list[dict]:
    """Per size, the distributed run on the most workers over the run on one (cells/s),
    beside what ``cores`` allow: the 1-worker run kept ``cores_busy`` cores busy (its
    worker, the driver, the engine actor, Ray), so ``cores`` of them allow at most
    ``cores / cores_busy`` times its speed (and no more than the worker count)."""
    scaling = []
    for cells in dict.fromkeys(r["cells"] for r in runs):
        spread = {
            r["workers"]: r
            for r in runs
            if r["cells"] == cells and r.get("mode") == "distributed" and "cells_per_s" in r
        }
        if 1 not in spread or len(spread) < 2:
            continue
        most, one = max(spread), spread[1]
        speed = spread[most]["cells_per_s"] / one["cells_per_s"]
        allowed = min(most, cores / one["cores_busy"])
        scaling.append(
            {
                "cells": cells,
                "workers": most,
                "speed_vs_1": round(speed, 3),
                "cores": cores,
                "cores_busy_1": one["cores_busy"],
                "cores_allow": round(allowed, 3),
                "share_of_allowed": round(speed / allowed, 3),
            }
        )
    return scaling


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.atlas_scaling")
    parser.add_argument("--quick", action="store_true")
    run(SuiteOptions(quick=parser.parse_args().quick, results_dir=RESULTS_DIR))
