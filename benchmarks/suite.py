"""What every suite shares: its options, its result file and its record of the run."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import REPO_ROOT, machine_info

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
QUICK_DIR = REPO_ROOT / "benchmarks" / ".work" / "quick"


@dataclass(frozen=True)
class SuiteOptions:
    """How a suite runs: ``quick`` (small, for a smoke test) and where results go."""

    quick: bool
    results_dir: Path


def start_record(suite: str, options: SuiteOptions) -> dict:
    """The common head of a result file: suite, command, machine, start time."""
    return {
        "suite": suite,
        "quick": options.quick,
        "command": " ".join([".venv/bin/python -m benchmarks", *sys.argv[1:]]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "_t0": time.perf_counter(),
    }


def finish_record(record: dict, options: SuiteOptions) -> Path:
    """Stamp the duration, write ``<results_dir>/<suite>.json`` and print it (last line)."""
    import os

    record["duration_s"] = round(time.perf_counter() - record.pop("_t0"), 1)
    record["load_average_at_end"] = list(os.getloadavg())
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{record['suite']}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), flush=True)
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def random_checkpoint_or_skip(record: dict, options: SuiteOptions, shape: str):
    """The random-weight checkpoint of ``shape``, recorded in ``record``; without it (no
    Pythia tokenizer) the record is finished as skipped and ``None`` returned."""
    from benchmarks.checkpoints import random_checkpoint

    checkpoint, reason = random_checkpoint(shape)
    if checkpoint is None:
        record["skipped"] = reason
        finish_record(record, options)
        return None
    record["checkpoint"] = checkpoint.to_json()
    return checkpoint
