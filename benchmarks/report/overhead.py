"""The ``serving_overhead`` section: rows and values from its JSON only."""

from __future__ import annotations

from benchmarks.report.format import fmt, latency

#: roles in table order, with their column names
ROLE_COLUMNS = (
    ("api_server", "vLLM API server"),
    ("proxy", "proxy"),
    ("gateway", "gateway"),
    ("builder", "builder"),
    ("decoder", "decoder"),
    ("engine_replica", "engine replica"),
    ("controller", "controller"),
    ("gcs", "GCS"),
    ("raylet", "raylet"),
    ("ray_other", "other Ray"),
    ("bulk_job", "bulk job"),
)


def _loop_row(label: str, d: dict | None) -> list:
    if not d:
        return [label, *["failed"] * 7]
    cpu = d["cpu_ms_per_request"]
    return [
        label,
        d.get("concurrency") or f"Poisson {fmt(d.get('offered_rate'), 1)}/s",
        fmt(d["requests_per_s"], 1),
        latency(d["ttft_ms"]),
        latency(d["e2e_ms"]),
        f"{fmt(d['mean_prompt_tokens'], 0)} / {fmt(d['mean_output_tokens'], 1)}",
        _above_engine(cpu),
        fmt(cpu["engine"], 1),
    ]


def _above_engine(cpu: dict) -> str:
    """The CPU above the engine, and beyond the servers' idle CPU where it was measured."""
    text = fmt(cpu["above_engine"], 1)
    if cpu.get("above_engine_beyond_idle") is not None:
        text += f" ({fmt(cpu['above_engine_beyond_idle'], 1)} beyond idle)"
    return text


def _cpu_row(label: str, cpu: dict | None) -> list:
    by_role = (cpu or {}).get("by_role", {})
    return [label, *(fmt(by_role.get(role), 1) for role, _ in ROLE_COLUMNS)]


def overhead_context(data: dict) -> dict:
    if "skipped" in data:
        return {"not_measured": data["skipped"]}
    a, c2s = data.get("a_vllm") or {}, data.get("c2s") or {}
    closed = _closed_loops(data)
    loops = [_loop_row(*closed[0]), _loop_row("(a) vLLM, same offered load", a.get("open_loop"))]
    loops += [_loop_row(label, d) for label, d in closed[1:]]
    loops.append(_loop_row("(b) c2s completions, same offered load", c2s.get("open_loop")))
    cpu = [_cpu_row(label, (d or {}).get("cpu_ms_per_request")) for label, d in closed]
    for label, server in (("(a) vLLM", a), ("(b) c2s", c2s)):
        if server.get("idle_cpu_ms_per_s"):
            cpu.append(
                _cpu_row(f"{label} idle: ms per second", {"by_role": server["idle_cpu_ms_per_s"]})
            )
    batch_rows = [
        [
            f"{b['cells_per_request']} x {b['in_flight']}",
            fmt(b["cells_per_s"], 1),
            latency(b["e2e_ms"]),
            f"{fmt(b['mean_prompt_tokens'], 0)} / {fmt(b['mean_output_tokens'], 1)}",
            fmt(b["cpu_ms_per_cell"]["above_engine"], 2),
            fmt(b["cpu_ms_per_cell"]["engine"], 2),
        ]
        for b in c2s.get("batch") or []
    ]
    for b in c2s.get("batch") or []:
        cpu.append(
            _cpu_row(
                f"(c) batch {b['cells_per_request']} x {b['in_flight']}, per cell",
                b["cpu_ms_per_cell"],
            )
        )
    bulk_rows = []
    for label, d in (
        ("(d) bulk, ray mode", c2s.get("bulk_ray")),
        ("(d) bulk, local mode", data.get("bulk_local")),
    ):
        if not d or "error" in d:
            bulk_rows.append([label, "failed", "—", "—", "—"])
            continue
        bulk_rows.append(
            [
                label,
                d["cells"],
                fmt(d["cells_per_s"], 1),
                fmt(d["job_process_cpu_ms_per_cell"], 1),
                fmt(d["server_cpu_ms_per_cell"]["above_engine"], 2),
            ]
        )
    goals = [
        [
            g["text"],
            g["target"],
            fmt(g["ratio"]),
            {True: "**met**", False: "**missed**", None: "not measured"}[g["met"]],
        ]
        for g in data.get("goals") or []
    ]
    profile_rows = [
        [
            role,
            p["samples"],
            f"{fmt(100 * p['our_code_share'], 1)}%" if p.get("our_code_share") is not None else "—",
            ", ".join(
                f"{name} {fmt(ms, 1)}"
                for name, ms in list(_threads(p, data["plan"]["requests"]).items())[:5]
            ),
            ", ".join(
                f"`{f['frame']}` {fmt(100 * f['share'], 0)}%" for f in p["top_files_inclusive"][:4]
            ),
        ]
        for role, p in (c2s.get("profile") or {}).items()
    ]
    return {
        "not_measured": None,
        "occupancy_rows": [_occupancy_row(label, d, data) for label, d in closed if d],
        "why": why_facts(data),
        "profile_rows": profile_rows,
        "step_rows": _step_rows(data.get("steps") or {}),
        "steps_note": (data.get("steps") or {}).get("note"),
        "data": data,
        "loop_rows": loops,
        "cpu_header": ["path", *(name for _, name in ROLE_COLUMNS)],
        "cpu_rows": cpu,
        "batch_rows": batch_rows,
        "bulk_rows": bulk_rows,
        "goal_rows": goals,
        "errors": data.get("errors") or {},
    }


def _threads(profile: dict, requests: int) -> dict:
    """CPU ms per request by thread; runs that kept the loop's total are divided by its
    request count."""
    if "thread_cpu_ms_per_request" in profile:
        return profile["thread_cpu_ms_per_request"]
    return {k: round(v / requests, 2) for k, v in (profile.get("thread_cpu_ms") or {}).items()}


def _step_rows(steps: dict) -> list[list]:
    """One row per server variant and route: CPU above the engine, its ratio to (a) in the
    same run, the main roles, and throughput's ratio to (a)."""
    rows = []
    for name, v in (steps.get("variants") or {}).items():
        for key in ("completions_stream", "completions_plain"):
            b = v[key]
            roles = b["by_role"]
            rows.append(
                [
                    f"`{name}`",
                    key.replace("_", ", "),
                    fmt(b["cpu_above_engine"], 1),
                    f"{fmt(b['cpu_ratio_to_a'])}x",
                    f"{fmt(b['beyond_idle_ratio_to_a'])}x"
                    if b.get("beyond_idle_ratio_to_a")
                    else "—",
                    " / ".join(
                        fmt(roles.get(r), 1) for r in ("gateway", "proxy", "engine_replica")
                    ),
                    fmt((roles.get("builder") or 0) + (roles.get("decoder") or 0), 1),
                    f"{fmt(b['throughput_ratio_to_a'])}x",
                    fmt((v.get("load_average_at_end") or [None])[0], 1),
                ]
            )
    return rows


def _closed_loops(data: dict) -> list[tuple[str, dict | None]]:
    """(a)'s closed loop and each of (b)'s routes, labelled; ``None`` where one failed."""
    a, c2s = data.get("a_vllm") or {}, data.get("c2s") or {}
    loops = [("(a) vLLM, completions, streamed", a.get("closed_loop"))]
    for key, d in (c2s.get("openai") or {}).items():
        loops.append((f"(b) c2s {key.replace('_', ', ')}", d))
    return loops


def _machine_ms_per_s(data: dict) -> int:
    return 1000 * int((data.get("machine") or {}).get("logical_cpus") or 0)


def occupancy(d: dict, machine_ms_per_s: int) -> dict:
    """Where a loop's CPU went: every process per second, and per request the engine's two
    processes and everything outside them (the layers above it and the load client)."""
    rps, cpu = d["requests_per_s"], d["cpu_ms_per_request"]
    outside = cpu["above_engine"] + (cpu["by_role"].get("load_client") or 0)
    return {
        "rps": rps,
        "total_ms_per_s": (cpu["engine"] + outside) * rps,
        "machine_ms_per_s": machine_ms_per_s,
        "engine_ms_per_request": cpu["engine"],
        "engine_ms_per_s": cpu["engine"] * rps,
        "outside_ms_per_request": outside,
    }


def _occupancy_row(label: str, d: dict, data: dict) -> list:
    o = occupancy(d, _machine_ms_per_s(data))
    return [
        label,
        fmt(o["rps"], 1),
        fmt(o["total_ms_per_s"], 0),
        fmt(o["engine_ms_per_request"], 1),
        fmt(o["engine_ms_per_s"], 0),
        fmt(o["outside_ms_per_request"], 1),
    ]


def why_facts(data: dict) -> dict:
    """The numbers the missed goals' explanations state, from this run's JSON."""
    a, c2s = data.get("a_vllm") or {}, data.get("c2s") or {}
    machine = _machine_ms_per_s(data)
    missed = {g["key"] for g in data.get("goals") or [] if g["met"] is False}
    b_closed = (c2s.get("openai") or {}).get("completions_stream")
    if not (missed and machine and a.get("closed_loop") and b_closed):
        return {"missed": missed}
    facts = {
        "missed": missed,
        "cpus": machine // 1000,
        "a": occupancy(a["closed_loop"], machine),
        "b": occupancy(b_closed, machine),
    }
    goal = next(g for g in data["goals"] if g["key"] == "openai_throughput")
    target = float(goal["target"].split()[-1])
    # the CPU a request may cost outside the engine for (b) to answer target x (a)'s rate
    # on this machine, if the engine needs per request what it took under (a)
    facts["outside_budget"] = (
        machine / (target * facts["a"]["rps"]) - facts["a"]["engine_ms_per_request"]
    )
    facts["target"] = target
    for name, d in (("a_open", a.get("open_loop")), ("b_open", c2s.get("open_loop"))):
        if d:  # the share of the machine the work outside the engine asks at that rate
            o = occupancy(d, machine)
            rate = d.get("offered_rate") or d["requests_per_s"]
            busy = rate * o["outside_ms_per_request"]
            facts[name] = {**o, "rate": rate, "busy": busy, "share": busy / machine}
    variant = (data.get("server_variant") or {}).get("config") or [{}]
    facts["engine_ingress"] = variant[0].get("ingress") == "engine"
    engine_roles = ("engine_core", "engine_worker", "load_client")
    roles = b_closed["cpu_ms_per_request"]["by_role"]
    above = sorted(
        ((k, v) for k, v in roles.items() if k not in engine_roles), key=lambda kv: -kv[1]
    )
    facts["b_roles"] = above[:4]
    facts["b_above"] = b_closed["cpu_ms_per_request"]["above_engine"]
    facts["a_above"] = a["closed_loop"]["cpu_ms_per_request"]["above_engine"]
    facts["b_beyond"] = b_closed["cpu_ms_per_request"].get("above_engine_beyond_idle")
    facts["a_beyond"] = a["closed_loop"]["cpu_ms_per_request"].get("above_engine_beyond_idle")
    ray, local = c2s.get("bulk_ray") or {}, data.get("bulk_local") or {}
    if ray.get("cells_per_s") and local.get("cells_per_s"):
        server = ray["server_cpu_ms_per_cell"]
        facts["bulk"] = {
            "ray_cps": ray["cells_per_s"],
            "local_cps": local["cells_per_s"],
            "ray_job_ms": ray["job_process_cpu_ms_per_cell"],
            "ray_above_ms": server["above_engine"],
            "ray_engine_ms_per_s": server["engine"] * ray["cells_per_s"],
            "server_cpu_cores": ((c2s.get("server") or {}).get("config") or {})
            .get("engine", {})
            .get("cpu_cores", "server"),
        }
    return facts
