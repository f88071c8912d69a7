"""CPU seconds of every process on the machine, grouped by the role it plays in serving.

A process's role comes from its title (Ray and vLLM set them: ``ray::ServeReplica:c2s:
Gateway``, ``VLLM::EngineCore``) or its command line. `CpuMeter` reads user + system
time of every process before and after a phase, so the CPU spent per request of each role
is the difference over the requests answered; processes that started or ended during the
phase count from zero or up to their last reading.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

#: (substring of the title or command line, role), first match wins
ROLES = (
    ("ServeReplica:c2s:Gateway", "gateway"),
    ("ServeReplica:c2s:PromptBuilder", "builder"),
    ("ServeReplica:c2s:Decoder", "decoder"),
    ("ServeReplica:c2s:Engine", "engine_replica"),
    ("ServeReplica:c2s:Embedder", "engine_replica"),
    ("ProxyActor", "proxy"),
    ("ServeController", "controller"),
    ("VLLM::EngineCore", "engine_core"),
    ("VLLM::Worker", "engine_worker"),
    ("vllm.entrypoints.openai.api_server", "api_server"),
    ("gcs_server", "gcs"),
    ("raylet", "raylet"),
    ("dashboard", "ray_other"),
    ("ray::", "ray_other"),
    ("serving.cli annotate", "bulk_job"),
    ("serving.cli serve", "serve_driver"),
)
#: roles that are the engine itself: the rest is "above the engine"
ENGINE_ROLES = frozenset({"engine_core", "engine_worker"})
#: the load generator's own process (this one), never counted as serving
CLIENT_ROLE = "load_client"


def role_of(process: psutil.Process) -> str | None:
    """The serving role of ``process``, or ``None`` when it plays none (the rest of the
    machine: other users' jobs are not counted)."""
    if process.pid == os.getpid():
        return CLIENT_ROLE
    try:
        title = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return next((role for key, role in ROLES if key in title), None)


@dataclass(frozen=True)
class Reading:
    """CPU seconds by pid, with each pid's role."""

    seconds: dict[int, float]
    roles: dict[int, str]


def read(owner_pids: set[int] | None = None) -> Reading:
    """CPU seconds of every process with a role; with ``owner_pids``, only those processes
    and their descendants (so another user's Ray on the same machine is not counted)."""
    allowed = None
    if owner_pids is not None:
        allowed = set(owner_pids)
        for pid in owner_pids:
            try:
                allowed.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        allowed.add(os.getpid())
    seconds, roles = {}, {}
    for process in psutil.process_iter():
        if allowed is not None and process.pid not in allowed:
            continue
        role = role_of(process)
        if role is None:
            continue
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        seconds[process.pid] = times.user + times.system
        roles[process.pid] = role
    return Reading(seconds, roles)


def per_request_ms(
    before: Reading,
    after: Reading,
    requests: int,
    idle_ms_per_s: dict[str, float] | None = None,
    seconds: float = 0.0,
) -> dict:
    """CPU milliseconds per request by role, their total above the engine, and the
    engine's. With ``idle_ms_per_s`` (each role's CPU while no request runs) and the
    phase's ``seconds``, also the total above the engine beyond that idle cost: the cost
    that grows with requests, where the idle one (Serve's controller loop, GCS, metrics)
    is spread over however many requests an engine answers per second."""
    by_role: dict[str, float] = {}
    for pid, role in {**before.roles, **after.roles}.items():
        spent = after.seconds.get(pid, before.seconds.get(pid, 0.0)) - before.seconds.get(pid, 0.0)
        by_role[role] = by_role.get(role, 0.0) + max(spent, 0.0)
    n = max(requests, 1)
    ms = {role: round(1000 * s / n, 2) for role, s in sorted(by_role.items())}
    out = {
        "by_role": ms,
        "above_engine": round(sum(v for r, v in ms.items() if _above_engine(r)), 2),
        "engine": round(sum(v for r, v in ms.items() if r in ENGINE_ROLES), 2),
    }
    if idle_ms_per_s is not None:
        idle = {r: idle_ms_per_s.get(r, 0.0) * seconds / n for r in ms}
        beyond = sum(max(v - idle[r], 0.0) for r, v in ms.items() if _above_engine(r))
        out["above_engine_beyond_idle"] = round(beyond, 2)
    return out


def _above_engine(role: str) -> bool:
    return role not in ENGINE_ROLES and role != CLIENT_ROLE


class CpuMeter:
    """Readings around one phase: ``with CpuMeter(pids) as meter: ...; meter.per_request(n)``."""

    def __init__(self, owner_pids: set[int] | None = None) -> None:
        self.owner_pids = owner_pids
        self.before: Reading | None = None
        self.after: Reading | None = None
        self.seconds = 0.0

    def __enter__(self) -> CpuMeter:
        self.before = read(self.owner_pids)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.after = read(self.owner_pids)
        self.seconds = time.perf_counter() - self._started

    def per_request(self, requests: int, idle_ms_per_s: dict[str, float] | None = None) -> dict:
        return per_request_ms(self.before, self.after, requests, idle_ms_per_s, self.seconds)

    def per_second(self) -> dict[str, float]:
        """CPU milliseconds per second of the phase by role (of an idle phase: the idle cost)."""
        ms = per_request_ms(self.before, self.after, 1)["by_role"]
        return {role: round(v / self.seconds, 2) for role, v in ms.items()}


def idle_cpu(owner_pids: set[int] | None, seconds: float) -> dict[str, float]:
    """Each role's CPU milliseconds per second while nothing is asked of the servers."""
    with CpuMeter(owner_pids) as meter:
        time.sleep(seconds)
    return meter.per_second()


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and every process under it (an engine
    core and its worker, a Ray cluster it started). Unlike wall time it does not grow
    when other jobs share the machine, so it shows what each path costs."""
    me = psutil.Process()
    total = 0.0
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total
