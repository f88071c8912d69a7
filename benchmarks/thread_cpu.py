"""CPU seconds of each thread of a process, by thread name (``/proc/<pid>/task/*/comm``).

Python-level sampling cannot see a Ray worker's C++ threads (its core worker's RPC and
serialisation), so the per-thread split says how much of a serving process's CPU is its
Python event loop and how much Ray's own machinery.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid``'s threads, summed by name (digits folded: ``worker.3`` and
    ``worker.7`` are one kind)."""
    out: dict[str, float] = {}
    try:
        threads = psutil.Process(pid).threads()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return out
    for thread in threads:
        try:
            name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
        except OSError:
            name = "?"
        name = re.sub(r"\d+", "N", name)
        out[name] = out.get(name, 0.0) + thread.user_time + thread.system_time
    return out


def per_request_ms(before: dict[str, float], after: dict[str, float], requests: int) -> dict:
    """Milliseconds per request by thread name, largest first."""
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    ms = {k: round(1000 * v / max(requests, 1), 2) for k, v in spent.items() if v > 0}
    return dict(sorted(ms.items(), key=lambda kv: -kv[1]))
