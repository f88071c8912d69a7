"""Launch a path child with its spec, keep its log, and read its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.checkpoints import WORK_DIR
from benchmarks.machine import REPO_ROOT
from benchmarks.paths.child import LAUNCHED_AT_ENV

LOG_DIR = WORK_DIR / "logs"


class ChildFailed(RuntimeError):
    """A child exited non-zero or printed no JSON result."""


def run_child(
    module: str, spec: dict, name: str, *, timeout_s: float, wrap: list[str] | None = None
) -> dict:
    """Run ``python -m <module> --spec <file>`` and return its result (last stdout line).

    The result gets ``command`` (the exact command line), ``wall_s`` and ``log`` (the
    child's output, kept under ``benchmarks/.work/logs``). ``wrap`` prefixes the command
    (a profiler). Raises `ChildFailed` with the log's tail.
    """
    spec_path = WORK_DIR / "specs" / f"{name}.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=1))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
    command = [*(wrap or []), sys.executable, "-m", module, "--spec", str(spec_path)]
    env = {
        **os.environ,
        LAUNCHED_AT_ENV: repr(time.time()),
        "TQDM_DISABLE": "1",
        # vLLM logs to stdout by default, also after the result line (at shutdown)
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ChildFailed(f"{name}: no result within {timeout_s:.0f} s") from exc
        log.write("\n--- stdout ---\n" + (done.stdout or ""))
    result = last_json_line(done.stdout or "")
    if done.returncode != 0 or result is None:
        tail = log_path.read_text()[-3000:]
        raise ChildFailed(f"{name}: exit {done.returncode}, no JSON result\n{tail}")
    result["command"] = " ".join(_relative(c) for c in command)
    result["wall_s"] = round(time.perf_counter() - start, 2)
    result["log"] = _relative(str(log_path))
    return result


def _relative(part: str) -> str:
    try:
        return str(Path(part).relative_to(REPO_ROOT))
    except ValueError:
        return part


def last_json_line(stdout: str) -> dict | None:
    """The child's result: its last stdout line that is a JSON object (a profiler
    wrapping the child may print after it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None
