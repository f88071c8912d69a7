"""Suite ``profile``: where the bulk path's time goes, sampled with py-spy.

The bulk path (d) runs the prediction and the generation workloads on the 410m-shaped
checkpoint with ``cpu_cores="all"``; py-spy attaches after start-up and warm-up (so
imports and weight loading are not counted), follows the engine-core and worker
processes (``--subprocesses``) at ``RATE`` Hz, and writes collapsed stacks. Python-level
frames only: native unwinding (``--native``) fell hours behind on this 2-core machine.

Each sample is put in one category by the first frame, from the leaf up, that matches a
category's pattern (`CATEGORIES`), and counted per process role (our process, vLLM's
engine core, its worker). Idle threads are not sampled (py-spy's default), so shares are
of busy time. A worker thread with no Python frame is one of torch's OpenMP threads
running a kernel (`NATIVE`): with Python frames only, which kernel is not visible.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.checkpoints import WORK_DIR
from benchmarks.child_process import last_json_line
from benchmarks.machine import REPO_ROOT
from benchmarks.paths.child import LAUNCHED_AT_ENV
from benchmarks.suite import (
    SuiteOptions,
    finish_record,
    log,
    random_checkpoint_or_skip,
    start_record,
)
from benchmarks.workload import CellPlan, build_workload, pbmc_cells, write_json

RATE = 20
PY_SPY = Path(sys.executable).with_name("py-spy")
#: (category, pattern on one frame), tried in order on each frame from the leaf up
CATEGORIES = (
    ("startup/imports", r"<frozen importlib|_bootstrap"),
    ("spin-wait (shm queue, sched_yield)", r"sched_yield|SpinCondition|acquire_read"),
    ("GEMM (oneDNN matmul)", r"onednn_mm|unquantized_gemm|gemm|linear\.py"),
    ("attention kernel", r"attn|attention"),
    ("sampling (top-k/top-p, penalties)", r"sampl|topk|top_p"),
    ("norm, activation, rotary", r"layernorm|layer_norm|gelu|activation|rotary"),
    ("input preparation (slots, metadata)", r"slot_mapping|_prepare|metadata|input_batch"),
    ("IPC (zmq, shm enqueue, serialisation)", r"zmq|MessageQueue|Socket|msgspec|serial"),
    ("scheduler and engine loop", r"vllm/v1/core/|scheduler|engine/core\.py|output_processor"),
    ("our stages (prompt build, decode)", r"serving/|tokenizer_ext/|benchmarks/"),
    ("model forward (other layers)", r"forward|model_executor"),
)
ROLES = {1: "our process", 2: "vLLM engine core", 3: "vLLM worker"}


#: samples of a thread with no Python frame: OpenMP threads of torch's kernels, mostly
NATIVE = "native threads (OpenMP kernel threads, no Python frame)"


def categorise(frames: list[str]) -> str:
    if not frames:
        return NATIVE
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return name
    return "other"


def summarise_stacks(raw: str, top: int = 12) -> dict:
    """Shares of samples per role and category, and the hottest leaf frames per role."""
    by_role: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    leaves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        depth = sum(f.startswith("process ") for f in frames)
        role = ROLES.get(depth, f"process depth {depth}")
        code = [f for f in frames if not f.startswith("process ")]
        n = int(count)
        total += n
        by_role[role][categorise(code)] += n
        if code:
            leaves[role][re.sub(r"\s+", " ", code[-1])[:120]] += n
    return {
        "samples": total,
        "roles": {
            role: {
                "share_of_samples": round(sum(c.values()) / total, 4) if total else None,
                "categories": {name: round(n / sum(c.values()), 4) for name, n in c.most_common()},
                "top_leaf_frames": [
                    {"frame": frame, "share": round(n / sum(c.values()), 4)}
                    for frame, n in leaves[role].most_common(top)
                ],
            }
            for role, c in sorted(by_role.items())
        },
    }


def profile_bulk(checkpoint, workload_file: Path, workload: str) -> dict:
    """Run the bulk child on one workload with py-spy attached after its warm-up."""
    import json
    import os

    tag = f"profile-{workload}"
    ready = WORK_DIR / "specs" / f"{tag}.ready"
    for marker in (ready, ready.with_suffix(".done"), ready.with_suffix(".detached")):
        marker.unlink(missing_ok=True)
    spec = {
        "checkpoint": str(checkpoint.path),
        "workload_file": str(workload_file),
        "workloads": [workload],
        "cpu_cores": "all",
        "ready_file": str(ready),
    }
    spec_path = WORK_DIR / "specs" / f"{tag}.json"
    spec_path.write_text(json.dumps(spec))
    stacks = WORK_DIR / "profiles" / f"{tag}.txt"
    stacks.parent.mkdir(parents=True, exist_ok=True)
    log_path = WORK_DIR / "logs" / f"{tag}.log"
    child_cmd = [sys.executable, "-m", "benchmarks.paths.bulk_job", "--spec", str(spec_path)]
    env = {
        **os.environ,
        LAUNCHED_AT_ENV: repr(time.time()),
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
    }
    with open(log_path, "w") as log_file:
        child = subprocess.Popen(
            child_cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True
        )
        deadline = time.monotonic() + 3600
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        spy_cmd = [
            str(PY_SPY), "record", "--pid", str(child.pid), "--subprocesses",
            "--rate", str(RATE), "--format", "raw", "--output", str(stacks),
        ]  # fmt: skip
        spy = subprocess.Popen(spy_cmd, stdout=log_file, stderr=subprocess.STDOUT)
        # stop sampling when the timed runs end: py-spy can hold vLLM's engine core
        # stopped while the engine shuts down, so it leaves before the child exits
        done = ready.with_suffix(".done")
        while not done.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        spy.send_signal(signal.SIGINT)  # py-spy writes its stacks on SIGINT
        spy.wait(timeout=300)
        ready.with_suffix(".detached").write_text("detached")
        stdout, _ = child.communicate(timeout=1200)
    result = last_json_line(stdout) or {}
    rel = lambda p: str(p).replace(str(REPO_ROOT) + "/", "")  # noqa: E731
    return {
        "workload": workload,
        "child_command": " ".join(rel(c) for c in child_cmd),
        "py_spy_command": " ".join(rel(c) for c in spy_cmd),
        "stacks_file": rel(stacks),
        "timed_runs": (result.get("workloads") or {}).get(workload, {}).get("runs"),
        **summarise_stacks(stacks.read_text() if stacks.is_file() else ""),
    }


def run(options: SuiteOptions) -> dict:
    record = start_record("profile", options)
    shape = "TINY" if options.quick else "PYTHIA_410M"
    checkpoint = random_checkpoint_or_skip(record, options, shape)
    if checkpoint is None:
        return record
    record["rate_hz"] = RATE
    plans = (
        {"prediction": CellPlan(4, 1, 1, 0), "generation": CellPlan(2, 1, 1, 0)}
        if options.quick
        else {"prediction": CellPlan(8, 1, 2, 0), "generation": CellPlan(4, 1, 1, 0)}
    )
    workload = build_workload(
        checkpoint.path, plans, pbmc_cells(), WORK_DIR / "workloads" / "profile"
    )
    workload_file = write_json(WORK_DIR / "workloads" / "profile.json", workload)
    record["profiles"] = {}
    for name in plans:
        log(f"profile: bulk path, {name}")
        record["profiles"][name] = profile_bulk(checkpoint, workload_file, name)
    finish_record(record, options)
    return record
