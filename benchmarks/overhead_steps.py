"""The step-by-step table of suite ``serving_overhead``: one ``--quick`` run per server
variant (``C2S_OVERHEAD_VARIANT``), each against vLLM's server in its own run.

    .venv/bin/python -m benchmarks.overhead_steps benchmarks/.work/quick/serving_overhead.json

copies the run to ``benchmarks/results/serving_overhead_steps/<variant>.json`` and adds
its row to the ``steps`` of ``benchmarks/results/serving_overhead.json`` (BENCHMARKS.md's
"Step by step"); ``python -m benchmarks report`` then regenerates the tables.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from benchmarks.machine import REPO_ROOT
from benchmarks.stats import ratio
from benchmarks.suite import RESULTS_DIR

STEPS_DIR = RESULTS_DIR / "serving_overhead_steps"
#: the roles a step's row shows
ROLES = ("gateway", "proxy", "builder", "decoder", "engine_replica", "controller")


def server_variant(record: dict) -> dict:
    """The run's variant (runs from before variants existed ran the default server)."""
    return record.get("server_variant") or {"name": "default"}


def step_entry(record: dict, file: Path) -> dict:
    """One variant's row: (a)'s figures and (b)'s, streamed and not, in that run."""
    a = record["a_vllm"]["closed_loop"]
    a_cpu = a["cpu_ms_per_request"]["above_engine"]
    entry = {
        "file": str(file.relative_to(REPO_ROOT)),
        "command": record["command"],
        "variant": server_variant(record),
        "load_average_at_end": [round(x, 1) for x in record.get("load_average_at_end") or []],
        "a_requests_per_s": a["requests_per_s"],
        "a_cpu_above_engine": a_cpu,
    }
    for key in ("completions_stream", "completions_plain"):
        b = record["c2s"]["openai"][key]
        cpu = b["cpu_ms_per_request"]
        entry[key] = {
            "cpu_above_engine_beyond_idle": cpu.get("above_engine_beyond_idle"),
            "requests_per_s": b["requests_per_s"],
            "cpu_above_engine": cpu["above_engine"],
            "cpu_ratio_to_a": ratio(cpu["above_engine"], a_cpu),
            "throughput_ratio_to_a": ratio(b["requests_per_s"], a["requests_per_s"]),
            "beyond_idle_ratio_to_a": ratio(
                cpu.get("above_engine_beyond_idle"),
                a["cpu_ms_per_request"].get("above_engine_beyond_idle"),
            ),
            "by_role": {r: cpu["by_role"][r] for r in ROLES if r in cpu["by_role"]},
        }
    return entry


def add_step(run_file: Path, results: Path = RESULTS_DIR / "serving_overhead.json") -> str:
    """Keep ``run_file`` under `STEPS_DIR` and its row in ``results``; the variant's name."""
    record = json.loads(run_file.read_text())
    name = server_variant(record)["name"]
    kept = STEPS_DIR / f"{name}.json"
    if run_file.resolve() != kept.resolve():
        shutil.copyfile(run_file, kept)
    data = json.loads(results.read_text())
    steps = data.setdefault("steps", {})
    steps.setdefault("variants", {})[name] = step_entry(record, kept)
    results.write_text(json.dumps(data, indent=1) + "\n")
    return name


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(add_step(Path(arg)))
