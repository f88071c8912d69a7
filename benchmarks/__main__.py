"""``python -m benchmarks``: run the benchmark suites and regenerate ``BENCHMARKS.md``.

    .venv/bin/python -m benchmarks run                  # every suite, then the report
    .venv/bin/python -m benchmarks run --suite peers    # one suite (repeatable)
    .venv/bin/python -m benchmarks run --quick          # everything small: a smoke test
    .venv/bin/python -m benchmarks report               # BENCHMARKS.md from the JSON only

Full runs write ``benchmarks/results/<suite>.json`` and ``BENCHMARKS.md``; ``--quick`` runs
write under ``benchmarks/.work/quick/`` so that a smoke test never replaces real results.
The last line printed is JSON: the result files written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import REPO_ROOT
from benchmarks.suite import QUICK_DIR, RESULTS_DIR, SuiteOptions, log


def _run_own_harness(suite: str, module: str, options: SuiteOptions, quick: list[str]) -> None:
    """A suite with a harness and CLI of its own, run in a child process; its JSON goes
    to the run's results folder, and ``quick`` are its arguments of a smoke test."""
    args = ["--out", str(options.results_dir / f"{suite}.json")]
    if options.quick:
        args += quick
    command = [sys.executable, "-m", module, *args]
    log(f"{suite}: {' '.join(command[1:])}")
    subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def run_tokenizer(options: SuiteOptions) -> None:
    """The tokenizer_ext prompt-construction benchmark."""
    quick = ["--cells", "8192", "--c2s-cells", "200", "--repeats", "1", "--memory-cells", "8192"]
    _run_own_harness("tokenizer", "benchmarks.tokenizer_bench", options, quick)


def run_label_scoring(options: SuiteOptions) -> None:
    """Issue 10's label-scoring cost benchmark."""
    quick = ["--quick", "--shape", "TINY", "--cells", "1", "--batch", "2"]
    _run_own_harness("label_scoring", "benchmarks.label_scoring_bench", options, quick)


def run_distributed(options: SuiteOptions) -> None:
    """Issue 15's local-vs-distributed benchmark; quick: the instant part on 2,000 cells."""
    quick = ["--part", "instant", "--cells", "2000"]
    _run_own_harness("distributed", "benchmarks.distributed_bench", options, quick)


def _suites() -> dict:
    from benchmarks import (
        atlas_scaling,
        bulk_bench,
        loadtest,
        long_prompts,
        peers,
        profiling,
        serving_overhead,
    )

    return {
        "peers": peers.run,
        "loadtest": loadtest.run,
        "long_prompts": long_prompts.run,
        "profile": profiling.run,
        "label_scoring": run_label_scoring,
        "tokenizer": run_tokenizer,
        "bulk": bulk_bench.run,
        "atlas_scaling": atlas_scaling.run,
        "distributed": run_distributed,
        "serving_overhead": serving_overhead.run,
    }


#: what ``run`` runs without --suite. The tokenizer suite's committed result belongs to
#: its own harness, so a full run only reads it; ``--suite tokenizer`` reruns it.
DEFAULT_SUITES = (
    "peers",
    "loadtest",
    "long_prompts",
    "profile",
    "label_scoring",
    "bulk",
    "atlas_scaling",
    "distributed",
    "serving_overhead",
)
QUICK_SUITES = (*DEFAULT_SUITES, "tokenizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run suites, then regenerate the report")
    run.add_argument("--suite", action="append", choices=sorted(_suites()), help="repeatable")
    run.add_argument("--quick", action="store_true", help="everything small (smoke test)")
    run.add_argument("--results-dir", type=Path, help="where the suites' JSON goes")
    report = commands.add_parser("report", help="regenerate BENCHMARKS.md from the JSON")
    report.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    report.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    from benchmarks.report import write_report

    if args.command == "report":
        written = write_report(args.results_dir, args.out)
        print(json.dumps({"report": str(args.out), "plots": [str(p) for p in written]}))
        return 0
    results_dir = args.results_dir or (QUICK_DIR / "results" if args.quick else RESULTS_DIR)
    options = SuiteOptions(quick=args.quick, results_dir=results_dir)
    suites = args.suite or (QUICK_SUITES if args.quick else DEFAULT_SUITES)
    failed = {}
    for name in suites:
        log(f"suite {name}: start")
        try:
            _suites()[name](options)
        except Exception as exc:  # one broken suite must not hide the others' results
            failed[name] = f"{type(exc).__name__}: {exc}"
            log(f"suite {name} failed: {failed[name]}")
    out = (QUICK_DIR / "BENCHMARKS.md") if args.quick else REPO_ROOT / "BENCHMARKS.md"
    plots = write_report(results_dir, out)
    print(
        json.dumps(
            {
                "suites": list(suites),
                "failed": failed,
                "results_dir": str(results_dir),
                "report": str(out),
                "plots": [str(p) for p in plots],
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
