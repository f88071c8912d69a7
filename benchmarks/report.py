"""``BENCHMARKS.md`` from the suites' JSON files only, with a PNG per suite.

`write_report` reads ``<results_dir>/*.json``, evaluates the goals (`benchmarks.goals`),
draws the plots (`benchmarks.plots`) and writes the Markdown. Nothing here measures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.goals import evaluate, goal_checkpoint
from benchmarks.peers import PATHS, STARTS
from benchmarks.plots import write_plots

#: the suites this report knows, in report order (others' files are shown when present)
SUITES = ("peers", "loadtest", "long_prompts", "profile", "label_scoring", "tokenizer", "bulk")
SAME_SETTING_VLLM = {
    "d_bulk_server": "c_vllm_offline_server",
    "d_bulk_all": "c_vllm_offline_all",
    "e_gateway_server": "c_vllm_offline_server",
    "e_gateway_all": "c_vllm_offline_all",
}


def fmt(value, digits: int = 2) -> str:
    """A number for a table cell; ``—`` for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.2g}"
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def load_results(results_dir: Path) -> dict[str, dict]:
    results = {}
    for suite in SUITES:
        path = results_dir / f"{suite}.json"
        if path.is_file():
            results[suite] = json.loads(path.read_text())
    return results


def ratio_of(paths: dict, numerator: str, denominator: str) -> float | None:
    a = paths.get(numerator, {}).get("cells_per_s")
    b = paths.get(denominator, {}).get("cells_per_s")
    return round(a / b, 2) if a and b else None


def status(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


# ----------------------------------------------------------------------------- sections


def measured_machine(results: dict[str, dict]) -> dict:
    """The machine record of our suites (others' harnesses record less)."""
    machines = [d.get("machine", {}) for d in results.values()]
    return next((m for m in machines if "cpu_flags" in m), machines[0] if machines else {})


def machine_section(results: dict[str, dict]) -> list[str]:
    machine = measured_machine(results)
    flags = machine.get("cpu_flags", [])
    memory = machine.get("memory_bytes")
    lines = ["## Machine", ""]
    lines += table(
        ["CPU", "logical CPUs", "memory", "AVX-512 BF16", "AMX BF16", "Python"],
        [
            [
                machine.get("cpu"),
                machine.get("logical_cpus"),
                f"{memory / 2**30:.1f} GiB" if memory else "—",
                fmt(machine.get("has_avx512_bf16")),
                fmt(machine.get("has_amx_bf16")),
                machine.get("python"),
            ]
        ],
    )
    lines += [f"CPU flags: `{' '.join(flags)}`", ""]
    packages = machine.get("packages", {})
    lines += table(["package", "version"], [[k, v] for k, v in packages.items()])
    loads = [
        [
            suite,
            data.get("started_at", "—"),
            fmt(data.get("duration_s"), 0),
            " / ".join(
                f"{x:.1f}" for x in data.get("machine", {}).get("load_average_at_start", [])
            ),
            " / ".join(f"{x:.1f}" for x in data.get("load_average_at_end", [])),
            data.get("machine", {}).get("git_commit", "—"),
        ]
        for suite, data in results.items()
        if "machine" in data and "suite" in data
    ]
    lines += [
        "The machine is shared with other work while it is measured: the load averages "
        "(1 / 5 / 15 min) at the start and end of each suite say how much. Compare ratios "
        "measured in the same run, not absolute numbers across runs.",
        "",
    ]
    lines += table(
        ["suite", "started", "duration (s)", "load at start", "load at end", "git commit"], loads
    )
    return lines


def goals_section(goals: list[dict], results: dict[str, dict]) -> list[str]:
    peers = results.get("peers")
    checkpoint = goal_checkpoint(peers) or "pythia-410m-random"
    lines = [
        "## Goals",
        "",
        f"From issue 7 (and issue 10's label scoring), evaluated on the `{checkpoint}` "
        "checkpoint in this run. "
        '(d) is our bulk path with `cpu_cores="all"`, (e) our gateway with the server '
        "default; each is compared with raw vLLM at the same thread setting.",
        "",
    ]
    rows = [
        [
            g["text"],
            g["target"],
            f"{fmt(g['measured'])} {g['unit']}",
            status(g["met"]),
            g["compared"],
        ]
        for g in goals
    ]
    lines += table(["goal", "target", "measured", "status", "compared"], rows)
    machine = measured_machine(results)
    if "cpu_flags" in machine and not machine.get("has_amx_bf16"):
        lines += [
            "Note: the goals were set from measurements on a machine with AMX, whose bf16 "
            "matmul peak was 2.0-2.4 TFLOP/s on 2 cores (`../shared/docs/serving-notes.md`). "
            "This machine has AVX-512 BF16 but no AMX, so its peak (measured below, same "
            "run) is several times lower, and every absolute rate here is lower than there.",
            "",
        ]
    return lines


def explanations_section(goals: list[dict], results: dict[str, dict]) -> list[str]:
    missed = [g for g in goals if g["met"] is False]
    if not missed:
        return []
    profile = results.get("profile", {}).get("profiles", {})
    lines = ["## Why goals were missed", ""]
    for goal in missed:
        lines.append(
            f"- **{goal['text']}** ({fmt(goal['measured'])} {goal['unit']}, target {goal['target']})."
        )
        lines += [f"  {s}" for s in explain(goal, results, profile)]
    lines.append("")
    return lines


def explain(goal: dict, results: dict, profile: dict) -> list[str]:
    """Sentences from the measurements that say where the time went."""
    peers = results.get("peers", {})
    checkpoint = goal_checkpoint(peers)
    workload = goal.get("workload") or "prediction"
    data = peers.get("checkpoints", {}).get(checkpoint, {}).get("workloads", {}).get(workload, {})
    paths = data.get("paths", {})
    out = []
    if goal["key"] == "ttft_under_load":
        tasks = results.get("loadtest", {}).get("task_requests", {})
        measured = tasks.get("ttft_goal", {})
        out.append(
            f"Idle TTFT (p50) was {fmt(measured.get('idle_ttft_p50_ms'), 0)} ms; at 80% of "
            f"the closed-loop peak ({fmt(tasks.get('peak', {}).get('requests_per_s'), 3)} req/s) "
            f"the p99 TTFT was {fmt(measured.get('loaded_ttft_p99_ms'), 0)} ms. A request "
            "that arrives while others prefill waits for their prefills: with "
            "prefill-bound prompts and one engine core (server setting), queueing at 80% "
            "utilisation alone multiplies TTFT (an M/D/1 queue waits 2x the service time "
            "on average at 80% load), before any overhead of ours."
        )
        return out
    if goal["key"].startswith("label_scoring"):
        return label_scoring_explanation(results.get("label_scoring", {}))
    if goal["key"] == "starts_reported":
        return ["Some configuration's cold or warm start is missing: see the errors in peers."]
    if "gateway" in goal["key"]:
        out.append(
            f"Gateway (server) {fmt(paths.get('e_gateway_server', {}).get('cells_per_s'), 3)} "
            f"cells/s vs raw vLLM (server) "
            f"{fmt(paths.get('c_vllm_offline_server', {}).get('cells_per_s'), 3)}: the gateway's "
            "engine keeps one core for HTTP, Ray Serve and the prompt builder and decoder "
            "replicas, which on this 2-core machine also share that core with the client."
        )
    if "hf_batched" in goal["key"] or "c2s" in goal["key"]:
        other = "b_hf_batched" if "hf_batched" in goal["key"] else "a_c2s_one_at_a_time"
        out.append(
            f"Both paths do the same FLOPs per cell; the bulk path reached "
            f"{fmt(100 * (paths.get('d_bulk_all', {}).get('fraction_of_peak') or 0), 1)}% of "
            f"the matmul peak and {PATHS[other][:3]} "
            f"{fmt(100 * (paths.get(other, {}).get('fraction_of_peak') or 0), 1)}%."
        )
    rows = profile.get(workload, {}).get("roles", {}) if "gateway" not in goal["key"] else {}
    if rows:
        parts = []
        for role, shares in rows.items():
            top = list(shares["categories"].items())[:4]
            described = ", ".join(f"{name} {100 * share:.0f}%" for name, share in top)
            parts.append(
                f"{role} ({100 * shares['share_of_samples']:.0f}% of busy samples): {described}"
            )
        out.append(
            f"py-spy profile of the bulk path on {workload} (suite `profile`): "
            + "; ".join(parts)
            + "."
        )
    bulk = paths.get("d_bulk_all", {})
    if goal["key"] == "prediction_peak" and bulk:
        peak = peers.get("matmul", {}).get("peak_tflops")
        out.append(
            f"The bulk path did {fmt(bulk.get('achieved_tflops'), 3)} TFLOP/s of the "
            f"{fmt(peak, 3)} TFLOP/s that torch's bf16 matmul reaches alone on 2 threads; "
            f"raw vLLM with the same binding reached "
            f"{fmt(100 * (paths.get('c_vllm_offline_all', {}).get('fraction_of_peak') or 0), 1)}%, "
            "so the gap is in the engine's kernels and scheduling, not in our layers."
        )
    return out


def peers_section(peers: dict, md_dir: Path, results_dir: Path) -> list[str]:
    lines = [
        "## Peers: the same cells on the same checkpoint",
        "",
        "Cells: scanpy's `pbmc68k_reduced` (log-normalised `.raw`), ranked into cell "
        "sentences as C2S does; every repeat uses different cells, so no path answers a "
        "repeated prompt from a cache. Every path gets the same prompt token ids (built by "
        "our prompt builder; the bulk path and the gateway build them from the task inputs "
        "and are checked equal) and generates exactly the same number of tokens "
        "(`min_tokens` = `max_tokens`, EOS ignored):",
        "",
    ]
    for name, spec in peers.get("workload_specs", {}).items():
        params = spec["params"]
        sampling = (
            "greedy"
            if params["temperature"] == 0
            else f"temperature {params['temperature']}, top_k {params['top_k']}, top_p {params['top_p']}"
        )
        lines.append(
            f"- **{name}**: task `{spec['task']}` (template 0, 200 genes), {sampling}, {spec['output_tokens']} output tokens per cell."
        )
    lines += [
        "",
        "Generation produces 200 output tokens per cell, the length the issue's goals were "
        "measured at. With the demo model's vocabulary (one token per gene) that is a "
        "200-gene cell; with the Pythia BPE (about 3.3 tokens per gene) it is about 60 "
        "genes, and a full 200-gene cell would be about 660 tokens, too slow for C2S's path "
        "on this machine.",
        "",
        "Paths: " + "; ".join(PATHS.values()) + ". (d) runs `AnnotationJob` (`c2s "
        "annotate` in process: input checks, reading and ranking the `.h5ad`, prompts, "
        "engine, decoding, Parquet shards) for prediction, timed to its last shard, with "
        "its stages set to the workload's sampling; the job annotates only, so for "
        "generation (d) is the job's runner (`run_batch` over the same stages). HF runs "
        "in bf16 with `use_cache=True` on "
        "2 threads; engines run eager (`enforce_eager=True`), bf16, prefix caching on; "
        "chunked prefill is on in raw vLLM (its default) and the bulk job "
        "(`EngineConfig.for_offline_job`), off in the gateway (the CPU build's auto "
        "setting, which keeps per-request seeds from killing the engine). Cells/s and tokens/s are medians over the repeats (for (a), "
        'each cell is a repeat). "% of peak" is cells/s x FLOPs per cell / the bf16 '
        "matmul peak measured in the same run.",
        "",
    ]
    matmul = peers.get("matmul", {})
    if matmul.get("peak_tflops"):
        start, end = matmul.get("start") or {}, matmul.get("end") or {}
        lines += [
            f"**bf16 matmul peak** (torch, 2 threads, best shape's median): "
            f"{fmt(matmul['peak_tflops'], 3)} TFLOP/s (start of run {fmt(start.get('peak_tflops'), 3)}, "
            f"end {fmt(end.get('peak_tflops'), 3)}; CPU capability {start.get('cpu_capability', '—')}).",
            "",
        ]
        shapes = start.get("shapes") or []
        if shapes:
            lines += table(
                ["matmul shape (m, k, n)", "TFLOP/s (median)"],
                [[" x ".join(str(d) for d in s["shape"]), fmt(s["tflops"], 3)] for s in shapes],
            )
    for ckpt_name, ckpt in peers.get("checkpoints", {}).items():
        info = ckpt["checkpoint"]
        shape = info["shape"]
        lines += [
            f"### `{ckpt_name}`: {info['description']}",
            "",
            f"{shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}, "
            f"{shape['num_attention_heads']} heads, vocabulary {shape['vocab_size']:,}, "
            f"{info['parameters'] / 1e6:.1f}M parameters.",
            "",
        ]
        for workload_name, workload in ckpt["workloads"].items():
            flops = workload["flops_per_cell"]
            plan = workload["plan"]
            lines += [
                f"#### {ckpt_name}: {workload_name}",
                "",
                f"Mean prompt {fmt(workload['mean_prompt_tokens'], 1)} tokens, "
                f"{workload['output_tokens']} output tokens; FLOPs per cell "
                f"{flops['total'] / 1e9:,.1f} GFLOP (prefill {flops['prefill'] / 1e9:,.1f}, decode "
                f"{flops['decode'] / 1e9:,.1f}). Cells: {plan['cells_per_run']} per run x "
                f"{plan['runs']} runs ({plan['one_at_a_time_cells']} for (a)), after "
                f"{plan['warmup_cells']} warm-up cells.",
                "",
            ]
            paths = workload["paths"]
            rows = []
            for key, label in PATHS.items():
                path = paths.get(key)
                if path is None:
                    why = "not run (time)" if key in ckpt.get("not_run", []) else "failed"
                    rows.append([label, "—", "—", "—", "—", "—", "—", "—", why])
                    continue
                note = ""
                if key == "b_hf_batched":
                    note = f"batch size {path.get('batch_size')}"
                if path.get("errors_by_status"):
                    note += f" errors {path['errors_by_status']}"
                if path.get("prompts_differing_from_workload"):
                    note += f" {path['prompts_differing_from_workload']} prompts differ"
                if path.get("runs_with_other_prompt_tokens"):
                    note += f" {path['runs_with_other_prompt_tokens']} runs' prompts differ"
                if path.get("end_to_end_cells_per_s"):
                    note += (
                        f" AnnotationJob; with its outputs (h5ad, report, plots): "
                        f"{fmt(path['end_to_end_cells_per_s'], 3)} cells/s"
                    )
                elif key.startswith("d_") and path.get("how"):
                    note += " run_batch over LocalStages (the job annotates only)"
                fraction = path.get("fraction_of_peak")
                rows.append(
                    [
                        label,
                        fmt(path["cells_per_s"], 3),
                        fmt(path["output_tokens_per_s"], 1),
                        fmt(path["total_tokens_per_s"], 1),
                        fmt(ratio_of(paths, key, "a_c2s_one_at_a_time")),
                        fmt(ratio_of(paths, key, "b_hf_batched")),
                        fmt(ratio_of(paths, key, SAME_SETTING_VLLM.get(key, key)))
                        if key in SAME_SETTING_VLLM
                        else "—",
                        fmt(100 * fraction, 1) if fraction is not None else "—",
                        f"{path['repeats']} {note}".strip(),
                    ]
                )
            lines += table(
                [
                    "path",
                    "cells/s",
                    "output tok/s",
                    "total tok/s",
                    "vs (a)",
                    "vs (b)",
                    "vs (c) same setting",
                    "% of peak",
                    "repeats, notes",
                ],
                rows,
            )
            sweep = paths.get("b_hf_batched", {}).get("sweep")
            if sweep:
                lines += [
                    "HF batch-size sweep (first run): "
                    + ", ".join(
                        f"batch {s}: {fmt(r['cells_per_s'], 3)} cells/s" for s, r in sweep.items()
                    )
                    + ".",
                    "",
                ]
        starts = ckpt.get("starts", {})
        if starts:
            rows = []
            for key, times in starts.items():
                cold, warm = times.get("cold") or {}, times.get("warm") or {}
                gateway = key.startswith("e_gateway")
                total = "launch_to_healthy_s" if gateway else "launch_to_ready_s"
                rows.append(
                    [
                        STARTS.get(key, key),
                        fmt(cold.get(total), 1),
                        "—" if gateway else fmt(cold.get("engine_start_s"), 1),
                        fmt(warm.get(total), 1),
                        "—" if gateway else fmt(warm.get("engine_start_s"), 1),
                    ]
                )
            lines += [
                f"Engine starts on `{ckpt_name}` (eager). Cold: the first start of the "
                "configuration in this run; warm: the next start, in a fresh process, with "
                "the files cached. "
                '"Launch to ready" counts from process launch (interpreter, imports) to '
                "the warm-up request answered; the gateway's counts from `c2s serve` to "
                "`/health` = 200 (Ray cluster, four deployments, engine).",
                "",
            ]
            lines += table(
                [
                    "configuration",
                    "cold: launch to ready (s)",
                    "cold: engine (s)",
                    "warm: launch to ready (s)",
                    "warm: engine (s)",
                ],
                rows,
            )
        for key, error in ckpt.get("errors", {}).items():
            lines += [f"Error in `{key}`:", "", "```", error.strip()[-800:], "```", ""]
    for name, reason in peers.get("skipped", {}).items():
        lines += [f"Skipped `{name}`: {reason}.", ""]
    return lines


def _latency(summary: dict | None) -> str:
    if not summary:
        return "—"
    return f"{fmt(summary.get('p50'), 0)} / {fmt(summary.get('p99'), 0)}"


def loadtest_section(loadtest: dict) -> list[str]:
    lines = ["## Load test: the gateway under load", ""]
    if "skipped" in loadtest or "error" in loadtest:
        return [*lines, f"Not measured: {loadtest.get('skipped') or loadtest.get('error')}", ""]
    checkpoint = loadtest["checkpoint"]
    gateway = loadtest["gateway"]
    starts = loadtest.get("starts", {})
    tasks = loadtest["task_requests"]
    lines += [
        f"`c2s serve` on `{checkpoint['name']}` ({checkpoint['description']}), engine "
        f'`cpu_cores="{loadtest["plan"]["cpu_cores"]}"`: `{gateway["command"]}` '
        f"(cold start {fmt(starts.get('cold'), 1)} s to healthy, warm restart "
        f"{fmt(starts.get('warm'), 1)} s). Task requests are cell type predictions "
        "streamed through the `openai` SDK, each a different cell, exactly 16 output "
        "tokens. Latencies in ms as p50 / p99; TPOT is (E2E - TTFT) / (tokens - 1), ITL "
        "the gaps between streamed tokens.",
        "",
        "Closed loop (N users, each sends its next request when answered):",
        "",
    ]
    header = [
        "users",
        "requests",
        "req/s",
        "output tok/s",
        "TTFT",
        "TPOT",
        "ITL",
        "E2E mean",
        "E2E p50 / p99",
        "errors",
    ]
    rows = [
        [
            s["concurrency"],
            s["requests"],
            fmt(s["requests_per_s"], 3),
            fmt(s["output_tokens_per_s"], 1),
            _latency(s["ttft_ms"]),
            _latency(s["tpot_ms"]),
            _latency(s["itl_ms"]),
            fmt((s["e2e_ms"] or {}).get("mean"), 0),
            _latency(s["e2e_ms"]),
            s["errors_by_status"] or "none",
        ]
        for s in [tasks["idle"], *tasks["closed_loop"]]
    ]
    rows[0][0] = "1 (idle)"
    lines += table(header, rows)
    knee = tasks.get("knee") or {}
    lines += [
        f"Peak: {fmt(tasks['peak']['requests_per_s'], 3)} req/s at {tasks['peak']['concurrency']} "
        f"users. **Knee**: {knee.get('concurrency', '—')} users, "
        f"{fmt(knee.get('requests_per_s'), 3)} req/s at p50 E2E {fmt(knee.get('e2e_p50_ms'), 0)} ms "
        f"({knee.get('rule', '')}); past it, latency grows faster than throughput.",
        "",
        "Open loop (Poisson arrivals at fractions of the closed-loop peak):",
        "",
    ]
    header = [
        "offered req/s",
        "of peak",
        "requests",
        "achieved req/s",
        "TTFT mean",
        "TTFT p50 / p99",
        "TPOT",
        "ITL",
        "E2E p50 / p99",
        "errors",
    ]
    rows = [
        [
            fmt(p["rate"], 3),
            f"{100 * p['fraction_of_peak']:.0f}%",
            p["requests"],
            fmt(p["requests_per_s"], 3),
            fmt((p["ttft_ms"] or {}).get("mean"), 0),
            _latency(p["ttft_ms"]),
            _latency(p["tpot_ms"]),
            _latency(p["itl_ms"]),
            _latency(p["e2e_ms"]),
            p["errors_by_status"] or "none",
        ]
        for p in tasks["open_loop"]
    ]
    lines += table(header, rows)
    goal = tasks["ttft_goal"]
    lines += [
        f"TTFT goal: p99 at 80% of peak {fmt(goal['loaded_ttft_p99_ms'], 0)} ms vs idle p50 "
        f"{fmt(goal['idle_ttft_p50_ms'], 0)} ms = {fmt(goal['ratio'])}x (goal <= {goal['goal_at_most']:g}x): "
        f"{status(goal['met'])}.",
        "",
    ]
    raw = loadtest.get("raw_completions", {})
    if raw:
        lines += [
            "Raw completions with vLLM's own load client, `vllm bench serve` (random token "
            "prompts of the task prompts' mean length, 16 output tokens, `--ignore-eos`):",
            "",
        ]
        rows = []
        for label, r in raw.items():
            if "error" in r:
                rows.append([label, "failed", "—", "—", "—", "—", "—", "—", "—"])
                continue
            rows.append(
                [
                    label,
                    r.get("completed"),
                    r.get("failed", "—"),
                    fmt(r.get("request_throughput"), 3),
                    fmt(r.get("output_throughput"), 1),
                    _latency(r.get("ttft_ms")),
                    _latency(r.get("tpot_ms")),
                    _latency(r.get("itl_ms")),
                    _latency(r.get("e2el_ms")),
                ]
            )
        lines += table(
            [
                "run",
                "completed",
                "failed",
                "req/s",
                "output tok/s",
                "TTFT p50 / p99",
                "TPOT",
                "ITL",
                "E2E p50 / p99",
            ],
            rows,
        )
        lines += ["Commands:", ""] + [f"- `{r['command']}`" for r in raw.values()] + [""]
    return lines


def long_prompts_section(long_prompts: dict, peak_tflops: float | None) -> list[str]:
    lines = ["## Long prompts: multi-cell prompts near the 8192-token context", ""]
    if "skipped" in long_prompts or "error" in long_prompts:
        reason = long_prompts.get("skipped") or long_prompts.get("error")
        return [*lines, f"Not measured: {reason}", ""]
    engine = long_prompts.get("engine", {})
    lines += [
        f"Task `{long_prompts['task']}` (template 0) on `{long_prompts['checkpoint']['name']}`, "
        f'our engine adapter in process with `cpu_cores="{engine.get("cpu_cores")}"`, greedy, '
        "16 output tokens. Latency: each prompt alone (median); throughput: the concurrent "
        "prompts at once. pbmc68k_reduced cells express a median of 243 genes, so "
        "400-gene cells are padded with unexpressed genes of the panel (same token cost).",
        "",
    ]
    rows = []
    for shape in long_prompts["shapes"].values():
        concurrent = shape.get("concurrent", {})
        flops = shape["flops_per_prompt"]["total"]
        rate = concurrent.get("prompts_per_s")
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
                fmt(100 * rate * flops / (peak_tflops * 1e12), 1) if rate and peak_tflops else "—",
            ]
        )
    lines += table(
        [
            "shape",
            "prompt tokens",
            "TFLOP per prompt",
            "TTFT (s)",
            "E2E (s)",
            "concurrent",
            "prompts/s",
            "prompt tok/s",
            "% of peak",
        ],
        rows,
    )
    return lines


def profile_section(profile: dict) -> list[str]:
    lines = ["## Profiles: where the bulk path's time goes", ""]
    if "skipped" in profile:
        return [*lines, f"Not measured: {profile['skipped']}", ""]
    lines += [
        f"py-spy (Python frames, {profile.get('rate_hz')} Hz, idle threads excluded) "
        f"attached to the bulk path (d) on `{profile['checkpoint']['name']}` after start-up "
        "and warm-up, following vLLM's engine-core and worker processes. A sample's "
        "category is the first frame from the leaf up that matches (`benchmarks/profiling.py`).",
        "",
    ]
    for workload, data in profile.get("profiles", {}).items():
        lines += [
            f"### {workload}: {data.get('samples', 0):,} samples",
            "",
            f"`{data['py_spy_command']}`",
            "",
        ]
        rows = []
        for role, shares in data.get("roles", {}).items():
            cats = ", ".join(
                f"{name} {100 * share:.0f}%"
                for name, share in shares["categories"].items()
                if share >= 0.02
            )
            rows.append([role, f"{100 * shares['share_of_samples']:.0f}%", cats])
        lines += table(["process", "share of busy samples", "categories (>= 2%)"], rows)
        worker = data.get("roles", {}).get("vLLM worker")
        if worker:
            lines += ["Hottest frames in the worker:", ""]
            lines += table(
                ["frame", "share"],
                [
                    [f"`{f['frame']}`", f"{100 * f['share']:.1f}%"]
                    for f in worker["top_leaf_frames"][:8]
                ],
            )
    return lines


def label_scoring_explanation(scoring: dict) -> list[str]:
    """Where scoring's extra work comes from, in prefill tokens (a load-free measure)."""
    best = scoring.get("summary", {}).get("best_block_size")
    setting = next(
        (s for s in scoring.get("settings", []) if s["prefix_caching"] and s["block_size"] == best),
        {},
    )
    k10 = setting.get("scored_k10", {})
    return [
        f"Scoring K = 10 labels sends {fmt(k10.get('engine_requests_per_cell'))} requests "
        f"per cell (the prompt, then one forced answer per label) and prefills "
        f"{fmt(k10.get('prefill_tokens_ratio_to_greedy'))}x the greedy prediction's tokens "
        f"({fmt(k10.get('prefill_tokens_per_cell'), 0)} vs "
        f"{fmt(setting.get('greedy_prefill_tokens'), 0)}): prefix caching shares whole "
        f"{best}-token KV blocks only, so every answer recomputes the prompt's last partial "
        f"block. Its {fmt(k10.get('decode_steps_per_cell'))} decode steps are shared by the "
        f"answers, like the greedy prediction's {fmt(setting.get('greedy_output_tokens'))}, "
        "but each step carries K rows."
    ]


def label_scoring_section(scoring: dict) -> list[str]:
    """Issue 10's benchmark: what scoring a label set costs against one greedy prediction."""
    workload = scoring.get("workload", {})
    lines = [
        "## Label scoring: K labels vs one greedy prediction",
        "",
        f"From `benchmarks/label_scoring_bench.py` (`{scoring.get('command')}`) on "
        f"`{scoring.get('checkpoint', {}).get('name')}`: {workload.get('prompt')}; greedy: "
        f"{workload.get('greedy')}; scored: {workload.get('scored')}. Latency is one cell at a "
        "time (median seconds); throughput a batch of cells at once. Each row is its own "
        "engine.",
        "",
    ]
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
    header = ["prefix cache", "block", "greedy (s)", "K=10 (s)", "K=10 / greedy"]
    header += ["K=10 prefill tokens / greedy", "K=10 batch cost / greedy", "K=50 (s)"]
    lines += table([*header, "K=50 / greedy"], rows)
    return lines


def tokenizer_section(tokenizer: dict) -> list[str]:
    lines = [
        "## Prompt construction: tokenizer_ext vs C2S's path",
        "",
        f"From `benchmarks/tokenizer_bench.py` (its own harness; `{tokenizer.get('command')}`): "
        "200-gene cell type prediction prompt ids on one core.",
        "",
    ]
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
    lines += table(["path", "cells/s", "µs per cell", "vs C2S", "cells timed"], rows)
    identical = throughput.get("ids_identical_to_c2s", {})
    memory = tokenizer.get("backed_memory", {})
    goal = tokenizer.get("goal", {})
    lines += [
        f"Ids identical to C2S's on {fmt(identical.get('cells_checked'))} cells: "
        f"{fmt(identical.get('identical'))}. Backed read: peak RSS over baseline "
        f"{fmt((memory.get('peak_rss_minus_baseline_bytes') or 0) / 2**20, 0)} MiB for a "
        f"{fmt((memory.get('file_bytes') or 0) / 2**20, 0)} MiB file. Goal >= "
        f"{goal.get('ratio_at_least', '—')}x C2S: {status(goal.get('met'))} ({fmt(goal.get('ratio'), 1)}x).",
        "",
    ]
    return lines


def bulk_section(bulk: dict) -> list[str]:
    """``benchmarks/bulk_bench.py``'s result (another harness): the bulk job vs raw vLLM."""
    lines = [
        "## Bulk job vs raw vLLM on the same engine (bulk_bench)",
        "",
        f"From `benchmarks/bulk_bench.py` (its own harness; `{bulk.get('command')}`): "
        f"{bulk.get('benchmark', '')}; {bulk.get('repeats', '—')} repeats, goal "
        f"{bulk.get('goal', '—')}.",
        "",
    ]
    rows = []
    for name, w in (bulk.get("workloads") or {}).items():
        rows.append(
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
        )
    header = ["workload", "cells", "prompt tokens", "raw cells/s", "bulk cells/s"]
    header += ["bulk end-to-end cells/s", "ratio", "paired ratio (median)", "ratio end-to-end"]
    return lines + table(header, rows)


def other_section(name: str, data: dict) -> list[str]:
    """A suite written by another harness whose layout this report does not know."""
    lines = [
        f"## `{name}` (from its own harness)",
        "",
        f"Command: `{data.get('command', '—')}`",
        "",
    ]
    scalars = [
        [k, fmt(v)]
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if scalars:
        lines += table(["field", "value"], scalars)
    lines += [f"Full result: `benchmarks/results/{name}.json`.", ""]
    return lines


def commands_section(results: dict[str, dict]) -> list[str]:
    lines = [
        "## Reproduce",
        "",
        "```bash",
        "make bench                                   # = .venv/bin/python -m benchmarks run",
        ".venv/bin/python -m benchmarks run --suite peers   # one suite",
        ".venv/bin/python -m benchmarks run --quick         # smoke test, results under benchmarks/.work/quick",
        ".venv/bin/python -m benchmarks report              # this file from benchmarks/results/*.json",
        "```",
        "",
        "Commands of this run (each child's spec JSON is under `benchmarks/.work/specs/`):",
        "",
    ]
    for suite, data in results.items():
        if "command" in data:
            lines.append(f"- {suite}: `{data['command']}`")
    peers = results.get("peers", {})
    for ckpt in peers.get("checkpoints", {}).values():
        for key, meta in ckpt.get("paths_meta", {}).items():
            if meta.get("command"):
                lines.append(f"  - {key}: `{meta['command']}`")
            if meta.get("gateway"):
                lines.append(f"    - gateway: `{meta['gateway']['command']}`")
    return [*lines, ""]


def plots_section(plots: dict[str, Path], md_dir: Path) -> list[str]:
    if not plots:
        return []
    lines = ["## Plots", ""]
    for suite, path in plots.items():
        lines += [f"![{suite}]({os.path.relpath(path, md_dir)})", ""]
    return lines


def render(
    results: dict[str, dict], plots: dict[str, Path], md_dir: Path, results_dir: Path
) -> str:
    goals = evaluate(results)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` from `"
        + os.path.relpath(results_dir, md_dir)
        + "/*.json` by `benchmarks/report.py`; do not edit by hand. Issue 7: peers side by "
        "side on the same cells and checkpoint, a load test of the gateway, long prompts, "
        "prompt construction, and the goals beside the measured ratios.",
        "",
    ]
    if not results:
        return "\n".join([*lines, "No results yet: run `make bench`.", ""])
    lines += goals_section(goals, results)
    lines += explanations_section(goals, results)
    lines += machine_section(results)
    peak = (results.get("peers", {}).get("matmul") or {}).get("peak_tflops")
    if "peers" in results:
        lines += peers_section(results["peers"], md_dir, results_dir)
    if "loadtest" in results:
        lines += loadtest_section(results["loadtest"])
    if "long_prompts" in results:
        lines += long_prompts_section(results["long_prompts"], peak)
    if "profile" in results:
        lines += profile_section(results["profile"])
    if "label_scoring" in results:
        lines += label_scoring_section(results["label_scoring"])
    if "tokenizer" in results:
        lines += tokenizer_section(results["tokenizer"])
    if "bulk" in results:
        lines += bulk_section(results["bulk"])
    for name in results:
        if name not in SUITES:
            lines += other_section(name, results[name])
    lines += plots_section(plots, md_dir)
    lines += commands_section(results)
    return "\n".join(lines).rstrip() + "\n"


def write_report(results_dir: Path, out: Path, *, plots: bool = True) -> list[Path]:
    """Write ``out`` from ``results_dir``'s JSON; returns the plots written."""
    results = load_results(results_dir)
    written = write_plots(results, results_dir) if plots else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, written, out.parent, results_dir))
    return list(written.values())
