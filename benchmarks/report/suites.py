"""The other suites' sections (load test, long prompts, profiles, label scoring, prompt
construction, bulk_bench, unknown harnesses): their rows and values, from the JSON only."""

from __future__ import annotations

from benchmarks.report.format import fmt, latency, status


def loadtest_context(loadtest: dict) -> dict:
    if "skipped" in loadtest or "error" in loadtest:
        return {"not_measured": loadtest.get("skipped") or loadtest.get("error")}
    tasks = loadtest["task_requests"]
    closed = [
        [
            s["concurrency"],
            s["requests"],
            fmt(s["requests_per_s"], 3),
            fmt(s["output_tokens_per_s"], 1),
            latency(s["ttft_ms"]),
            latency(s["tpot_ms"]),
            latency(s["itl_ms"]),
            fmt((s["e2e_ms"] or {}).get("mean"), 0),
            latency(s["e2e_ms"]),
            s["errors_by_status"] or "none",
        ]
        for s in [tasks["idle"], *tasks["closed_loop"]]
    ]
    closed[0][0] = "1 (idle)"
    open_rows = [
        [
            fmt(p["rate"], 3),
            f"{100 * p['fraction_of_peak']:.0f}%",
            p["requests"],
            fmt(p["requests_per_s"], 3),
            fmt((p["ttft_ms"] or {}).get("mean"), 0),
            latency(p["ttft_ms"]),
            latency(p["tpot_ms"]),
            latency(p["itl_ms"]),
            latency(p["e2e_ms"]),
            p["errors_by_status"] or "none",
        ]
        for p in tasks["open_loop"]
    ]
    raw = loadtest.get("raw_completions", {})
    return {
        "not_measured": None,
        "checkpoint": loadtest["checkpoint"],
        "cpu_cores": loadtest["plan"]["cpu_cores"],
        "gateway": loadtest["gateway"],
        "starts": loadtest.get("starts", {}),
        "closed_rows": closed,
        "peak": tasks["peak"],
        "knee": tasks.get("knee") or {},
        "open_rows": open_rows,
        "ttft_goal": tasks["ttft_goal"],
        "raw_rows": [raw_row(label, r) for label, r in raw.items()],
        "raw_commands": [r["command"] for r in raw.values()],
    }


def raw_row(label: str, r: dict) -> list:
    if "error" in r:
        return [label, "failed", *["—"] * 7]
    return [
        label,
        r.get("completed"),
        r.get("failed", "—"),
        fmt(r.get("request_throughput"), 3),
        fmt(r.get("output_throughput"), 1),
        latency(r.get("ttft_ms")),
        latency(r.get("tpot_ms")),
        latency(r.get("itl_ms")),
        latency(r.get("e2el_ms")),
    ]


def long_prompts_context(long_prompts: dict, peak_tflops: float | None) -> dict:
    if "skipped" in long_prompts or "error" in long_prompts:
        return {"not_measured": long_prompts.get("skipped") or long_prompts.get("error")}
    rows = []
    for shape in long_prompts["shapes"].values():
        concurrent = shape.get("concurrent", {})
        flops = shape["flops_per_prompt"]["total"]
        rate = concurrent.get("prompts_per_s")
        share = rate * flops / (peak_tflops * 1e12) if rate and peak_tflops else None
        rows.append(
            [
                f"{shape['cells']} cells x {shape['genes_per_cell']} genes",
                f"{min(shape['prompt_tokens']):,}-{max(shape['prompt_tokens']):,}",
                fmt(flops / 1e12, 2),
                fmt(shape.get("ttft_s_median"), 2),
                fmt(shape.get("e2e_s_median"), 2),
                f"{concurrent.get('prompts', '—')} in {fmt(concurrent.get('seconds'), 1)} s",
                fmt(rate, 3),
                fmt(concurrent.get("prompt_tokens_per_s"), 0),
                fmt(100 * share, 1) if share is not None else "—",
            ]
        )
    return {
        "not_measured": None,
        "data": long_prompts,
        "engine": long_prompts.get("engine", {}),
        "rows": rows,
    }


def profile_context(profile: dict) -> dict:
    workloads = []
    for workload, data in profile.get("profiles", {}).items():
        roles = data.get("roles", {})
        rows = [
            [
                role,
                f"{100 * shares['share_of_samples']:.0f}%",
                ", ".join(
                    f"{name} {100 * share:.0f}%"
                    for name, share in shares["categories"].items()
                    if share >= 0.02
                ),
            ]
            for role, shares in roles.items()
        ]
        worker = roles.get("vLLM worker")
        hottest = [
            [f"`{f['frame']}`", f"{100 * f['share']:.1f}%"]
            for f in (worker or {}).get("top_leaf_frames", [])[:8]
        ]
        workloads.append(
            {
                "name": workload,
                "samples": data.get("samples", 0),
                "command": data["py_spy_command"],
                "rows": rows,
                "hottest": hottest if worker else [],
            }
        )
    return {"profile": profile, "workloads": workloads}


def label_scoring_context(scoring: dict) -> dict:
    rows = []
    for s in scoring.get("settings", []):
        k10, k50 = s.get("scored_k10", {}), s.get("scored_k50", {})
        rows.append(
            [
                "on" if s["prefix_caching"] else "off",
                s["block_size"],
                fmt(s.get("greedy_s"), 2),
                fmt(k10.get("median_s"), 2),
                fmt(k10.get("ratio_to_greedy")),
                fmt(k10.get("prefill_tokens_ratio_to_greedy")),
                fmt(k10.get("throughput_cost_ratio")),
                fmt(k50.get("median_s"), 2),
                fmt(k50.get("ratio_to_greedy")),
            ]
        )
    return {"data": scoring, "workload": scoring.get("workload", {}), "rows": rows}


def tokenizer_context(tokenizer: dict) -> dict:
    throughput = tokenizer.get("throughput", {})
    ratios = throughput.get("ratio_vs_c2s", {})
    rows = [
        [
            name,
            fmt(v.get("cells_per_s"), 0),
            fmt(v.get("us_per_cell"), 1),
            fmt(ratios.get(name), 1) if name in ratios else "1.0",
            v.get("cells"),
        ]
        for name, v in throughput.items()
        if isinstance(v, dict) and "cells_per_s" in v
    ]
    memory = tokenizer.get("backed_memory", {})
    return {
        "data": tokenizer,
        "rows": rows,
        "identical": throughput.get("ids_identical_to_c2s", {}),
        "rss_mib": (memory.get("peak_rss_minus_baseline_bytes") or 0) / 2**20,
        "file_mib": (memory.get("file_bytes") or 0) / 2**20,
        "goal": tokenizer.get("goal", {}),
    }


def bulk_context(bulk: dict) -> dict:
    rows = [
        [
            name,
            w.get("cells"),
            fmt(w.get("mean_prompt_tokens"), 1),
            fmt((w.get("raw") or {}).get("cells_per_s"), 3),
            fmt((w.get("bulk_pipeline") or {}).get("cells_per_s"), 3),
            fmt((w.get("bulk_end_to_end") or {}).get("cells_per_s"), 3),
            fmt(w.get("ratio_pipeline")),
            fmt(w.get("median_paired_ratio_pipeline")),
            fmt(w.get("ratio_end_to_end")),
        ]
        for name, w in (bulk.get("workloads") or {}).items()
    ]
    return {"data": bulk, "rows": rows}


def atlas_scaling_context(scaling: dict) -> dict:
    from benchmarks.atlas_scaling import run_label

    goals = scaling.get("goals", {})
    cpu_goal = goals.get("answering_cells_per_cpu_s")
    rows = [
        [
            f"{r['cells']:,}",
            run_label(r),
            fmt(r.get("cells_per_s"), 0),
            fmt(r.get("end_to_end_cells_per_s"), 0),
            fmt(r.get("answering_cells_per_cpu_s"), 0),
            # the CPU goal is the in-process driver's; a distributed run counts every process
            status(_at_least(r.get("answering_cells_per_cpu_s"), cpu_goal))
            if r.get("mode", "local") == "local"
            else "—",
            _runs_spread(r.get("answering_cells_per_cpu_s_runs")),
            fmt(r.get("cores_busy")),
            fmt(r.get("cells_per_cpu_s"), 0),
            fmt(r.get("answering_peak_rss_mib"), 0),
            fmt(r.get("peak_rss_mib"), 0),
            _per_process_rss(r),
        ]
        for r in scaling.get("runs", [])
    ]
    ratios = [
        [
            label,
            f"{r['cells']:,}",
            fmt(r["speed"]),
            status(r["speed"] >= goals.get("speed_1m_vs_10k", 0.9)),
            fmt(_cpu_speed_ratio(scaling.get("runs", []), label, r["cells"])),
            fmt(r["peak_rss"]),
            status(_at_most(r["peak_rss"], goals.get("rss_1m_vs_10k", 1.2))),
            fmt(r.get("answering_peak_rss")),
            fmt(r.get("driver_peak_rss")),
        ]
        for label, r in (scaling.get("ratios") or {}).items()
    ]
    worker_goal = goals.get("workers_2_vs_1", 1.7)
    workers = [
        [
            f"{w['cells']:,}",
            w["workers"],
            fmt(w["speed_vs_1"]),
            fmt(w["cores_busy_1"]),
            fmt(w["cores_allow"]),
            fmt(w["share_of_allowed"]),
            status(w["speed_vs_1"] >= worker_goal)
            if w["cores_allow"] >= worker_goal
            else f"{w['cores']} cores allow {fmt(w['cores_allow'])}x",
            _same_shards(scaling.get("runs", []), w["cells"], w["workers"]),
        ]
        for w in scaling.get("worker_scaling") or []
    ]
    return {
        "data": scaling,
        "rows": rows,
        "ratios": ratios,
        "workers": workers,
        "goals": goals,
    }


def _per_process_rss(run: dict) -> str:
    """``driver / largest Ray process`` peak RSS of a distributed run, whole job."""
    driver, ray = run.get("driver_peak_rss_mib"), run.get("largest_ray_process_peak_rss_mib")
    return "" if driver is None else f"{fmt(driver, 0)} / {fmt(ray, 0)}"


def _same_shards(runs: list[dict], cells: int, workers: int) -> str:
    run = next(
        (
            r
            for r in runs
            if r["cells"] == cells
            and r.get("workers") == workers
            and r.get("mode") == "distributed"
        ),
        {},
    )
    return {True: "yes", False: "NO"}.get(run.get("same_shards_as_1_worker"), "—")


def _runs_spread(values: list | None) -> str:
    """``5: 4,900-5,300``: how many runs a median is of, and their range."""
    if not values:
        return ""
    if len(values) == 1:
        return "1"
    return f"{len(values)}: {fmt(min(values), 0)}-{fmt(max(values), 0)}"


def distributed_context(record: dict) -> dict:
    """``c2s annotate --mode distributed`` against the local run, per part (instant, demo)."""
    parts = []
    for name in ("instant", "demo"):
        part = record.get(name) or {}
        rows = [
            [
                run,
                fmt(r.get("cells_per_s"), 1),
                fmt(r.get("driver_peak_rss_mib"), 0),
                fmt(r.get("largest_ray_process_peak_rss_mib"), 0),
                {True: "yes", False: "NO"}.get(r.get("same_shards_as_local"), "-"),
            ]
            for run, r in (part.get("runs") or {}).items()
        ]
        ratio = part.get("two_over_one_workers") or part.get("distributed_over_local")
        parts.append(
            {
                "name": name,
                "input": part.get("input", ""),
                "rows": rows,
                "ratio": ratio,
                "not_measured": part.get("not_measured"),
            }
        )
    return {"data": record, "parts": parts}


def _cpu_speed_ratio(runs: list[dict], label: str, cells: int) -> float | None:
    """Cells per CPU-second at ``cells`` over the smallest size's (load does not move it)."""
    from benchmarks.atlas_scaling import run_label

    measured = sorted(
        (r for r in runs if run_label(r) == label and "cells_per_cpu_s" in r),
        key=lambda r: r["cells"],
    )
    large = next((r for r in measured if r["cells"] == cells), None)
    if not measured or large is None:
        return None
    return round(large["cells_per_cpu_s"] / measured[0]["cells_per_cpu_s"], 3)


def _at_least(value: float | None, bound: float | None) -> bool | None:
    return None if value is None or bound is None else value >= bound


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def other_context(name: str, data: dict) -> dict:
    scalars = [
        [k, fmt(v)]
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return {"name": name, "data": data, "scalars": scalars}


def commands_context(results: dict[str, dict]) -> dict:
    lines = [
        f"- {suite}: `{data['command']}`" for suite, data in results.items() if "command" in data
    ]
    for ckpt in results.get("peers", {}).get("checkpoints", {}).values():
        for key, meta in ckpt.get("paths_meta", {}).items():
            if meta.get("command"):
                lines.append(f"  - {key}: `{meta['command']}`")
            if meta.get("gateway"):
                lines.append(f"    - gateway: `{meta['gateway']['command']}`")
    return {"commands": lines}
