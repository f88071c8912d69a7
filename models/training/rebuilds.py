"""Rebuilds of the committed recipe on other CPUs, recorded beside the checkpoint.

The weights repeat to the digit only on the same CPU: its kernels differ with and without
AMX (which also decides the precision, `models.training.train.autocast`), so a rebuild
elsewhere is another draw of the recipe. ``rebuilds.json`` keeps each rebuild's CPU,
precision, time and engine scores, and the model card shows them.

Run with ``python -m models.training.rebuilds --model DIR REBUILD_DIR...``, where each
``REBUILD_DIR`` holds a full run (``python -m models.training --out REBUILD_DIR``, with
``--no-bf16`` at most).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from models.training.pilots import engine_summary, precision
from models.training.train import DEFAULT_OUT, TrainSettings

REBUILDS_FILE = "rebuilds.json"


def summarise(run_dir: Path) -> dict:
    """One rebuild's CPU, precision, minutes and engine scores on the held-out cells."""
    training = json.loads((run_dir / "training.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    defaults = asdict(TrainSettings())
    changed = {k for k, v in training["settings"].items() if defaults.get(k) != v}
    if changed - {"bf16"} or metrics.get("cells") != "held_out":
        raise ValueError(f"{run_dir} is not the recipe scored on the held-out cells")
    return {
        # a rebuild of an earlier recipe stays on record with the steps it then had
        "steps": training["settings"]["steps"],
        "machine": metrics["machine"],
        "bf16": precision(training) == "bf16",
        "seconds": training["seconds"],
        "seconds_per_step": training["seconds_per_step"],
        "held_out_cells": metrics["held_out_cells"],
        "engine": engine_summary(metrics),
    }


def read_rebuilds(model_dir: Path) -> list[dict]:
    """The rebuilds recorded beside a checkpoint, or none."""
    path = model_dir / REBUILDS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT)
    parser.add_argument("rebuilds", type=Path, nargs="+")
    args = parser.parse_args(argv)
    rebuilds = [summarise(r) for r in args.rebuilds]
    (args.model / REBUILDS_FILE).write_text(json.dumps(rebuilds, indent=2) + "\n")


if __name__ == "__main__":
    main()
