"""Where ``c2s serve``'s CPU above the engine goes: py-spy on its Ray processes under load.

py-spy samples each serving process (Gateway, Proxy, PromptBuilder, Decoder, Engine
replica) at ``RATE`` Hz while the load runs, Python frames only (idle threads are not
sampled), and the hottest frames of each are kept: the leaf frames, and the files whose
code is on the stack most often (inclusive shares).
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from benchmarks.checkpoints import WORK_DIR
from benchmarks.process_cpu import role_of
from benchmarks.thread_cpu import per_request_ms, thread_seconds

RATE = 50
PY_SPY = Path(sys.executable).with_name("py-spy")
PROFILED_ROLES = ("gateway", "proxy", "engine_replica", "builder", "decoder")


def serving_processes(owner_pids: set[int]) -> dict[str, int]:
    """The pid of each profiled role among ``owner_pids``' descendants."""
    found = {}
    for pid in owner_pids:
        for child in psutil.Process(pid).children(recursive=True):
            role = role_of(child)
            if role in PROFILED_ROLES and role not in found:
                found[role] = child.pid
    return found


def start(owner_pids: set[int], name: str) -> list[tuple[str, subprocess.Popen, Path]]:
    """One py-spy per serving process, sampling until `stop`; each process's thread
    CPU is read at the start too (`benchmarks.thread_cpu`)."""
    out_dir = WORK_DIR / "overhead" / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for role, pid in serving_processes(owner_pids).items():
        stacks = out_dir / f"{name}-{role}.txt"
        command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(RATE)]
        command += ["--format", "raw", "--output", str(stacks), "--nonblocking"]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((role, spy, stacks, pid, thread_seconds(pid)))
    return spies


def stop(spies: list[tuple], requests: int | None = None, top: int = 10) -> dict:
    """Stop every py-spy (it writes its stacks on SIGINT) and summarise each role, with
    its CPU milliseconds per request by thread (in all, without ``requests``)."""
    out = {}
    for role, spy, stacks, pid, threads_before in spies:
        threads = per_request_ms(threads_before, thread_seconds(pid), requests or 1)
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
        out[role] = summarise(stacks.read_text() if stacks.is_file() else "", top)
        out[role]["thread_cpu_ms_per_request" if requests else "thread_cpu_ms"] = threads
    return out


def summarise(raw: str, top: int) -> dict:
    """Samples, the hottest leaf frames, and the source files most often on the stack."""
    leaves: collections.Counter = collections.Counter()
    files: collections.Counter = collections.Counter()
    ours = 0
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        n = int(count)
        total += n
        if frames:
            leaves[re.sub(r"\s+", " ", frames[-1])[:140]] += n
        for source in {_source(f) for f in frames}:
            files[source] += n
        ours += n if any("serving/" in f for f in frames) else 0

    def shares(counter: collections.Counter) -> list[dict]:
        return [{"frame": k, "share": round(n / total, 3)} for k, n in counter.most_common(top)]

    return {
        "samples": total,
        "our_code_share": round(ours / total, 3) if total else None,
        "top_leaf_frames": shares(leaves),
        "top_files_inclusive": shares(files),
    }


def _source(frame: str) -> str:
    """``ray/serve/_private/router.py`` from a frame ``fn (path/to/file.py:12)``."""
    match = re.search(r"\(([^()]*?\.py)", frame)
    if not match:
        return frame[:60]
    path = match.group(1)
    for marker in ("site-packages/", "wt-14/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
