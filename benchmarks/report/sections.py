"""The machine, goals and peers sections: their rows and values, from the JSON only.

Each ``*_context`` function returns the values its template (``templates/<name>.md.j2``)
fills; the prose is in the templates.
"""

from __future__ import annotations

from benchmarks.goals import goal_checkpoint
from benchmarks.peers import PATHS, STARTS
from benchmarks.report.format import fmt, loads, pct, ratio_of, status

SAME_SETTING_VLLM = {
    "d_bulk_server": "c_vllm_offline_server",
    "d_bulk_all": "c_vllm_offline_all",
    "e_gateway_server": "c_vllm_offline_server",
    "e_gateway_all": "c_vllm_offline_all",
}


def measured_machine(results: dict[str, dict]) -> dict:
    """The machine record of our suites (others' harnesses record less)."""
    machines = [d.get("machine", {}) for d in results.values()]
    return next((m for m in machines if "cpu_flags" in m), machines[0] if machines else {})


def machine_context(results: dict[str, dict]) -> dict:
    machine = measured_machine(results)
    memory = machine.get("memory_bytes")
    runs = [
        [
            suite,
            data.get("started_at", "—"),
            fmt(data.get("duration_s"), 0),
            loads(data["machine"].get("load_average_at_start")),
            loads(data.get("load_average_at_end")),
            data["machine"].get("git_commit", "—"),
        ]
        for suite, data in results.items()
        if "machine" in data and "suite" in data
    ]
    return {
        "machine": machine,
        "memory": f"{memory / 2**30:.1f} GiB" if memory else "—",
        "flags": machine.get("cpu_flags", []),
        "packages": [[k, v] for k, v in machine.get("packages", {}).items()],
        "runs": runs,
    }


def goals_context(goals: list[dict], results: dict[str, dict]) -> dict:
    machine = measured_machine(results)
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
    return {
        "checkpoint": goal_checkpoint(results.get("peers")) or "pythia-410m-random",
        "rows": rows,
        "no_amx": "cpu_flags" in machine and not machine.get("has_amx_bf16"),
        "avx512_bf16": bool(machine.get("has_avx512_bf16")),
    }


def peers_row(key: str, label: str, paths: dict, not_run: list[str]) -> list:
    path = paths.get(key)
    if path is None:
        return [label, *["—"] * 7, "not run (time)" if key in not_run else "failed"]
    fraction = path.get("fraction_of_peak")
    same = SAME_SETTING_VLLM.get(key)
    return [
        label,
        fmt(path["cells_per_s"], 3),
        fmt(path["output_tokens_per_s"], 1),
        fmt(path["total_tokens_per_s"], 1),
        fmt(ratio_of(paths, key, "a_c2s_one_at_a_time")),
        fmt(ratio_of(paths, key, "b_hf_batched")),
        fmt(ratio_of(paths, key, same)) if same else "—",
        pct(fraction) if fraction is not None else "—",
        f"{path['repeats']} {peers_note(key, path)}".strip(),
    ]


def peers_note(key: str, path: dict) -> str:
    note = f"batch size {path.get('batch_size')}" if key == "b_hf_batched" else ""
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
        note += " fan_out over LocalPipeline (the job annotates only)"
    return note


def starts_rows(starts: dict) -> list[list]:
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
    return rows


def sampling_text(params: dict) -> str:
    if params["temperature"] == 0:
        return "greedy"
    return f"temperature {params['temperature']}, top_k {params['top_k']}, top_p {params['top_p']}"


def checkpoint_context(name: str, ckpt: dict) -> dict:
    workloads = [
        {
            "name": workload_name,
            "mean_prompt_tokens": w["mean_prompt_tokens"],
            "output_tokens": w["output_tokens"],
            "flops": w["flops_per_cell"],
            "plan": w["plan"],
            "rows": [
                peers_row(key, label, w["paths"], ckpt.get("not_run", []))
                for key, label in PATHS.items()
            ],
            "sweep": w["paths"].get("b_hf_batched", {}).get("sweep"),
        }
        for workload_name, w in ckpt["workloads"].items()
    ]
    return {
        "name": name,
        "info": ckpt["checkpoint"],
        "shape": ckpt["checkpoint"]["shape"],
        "workloads": workloads,
        "starts": starts_rows(ckpt.get("starts", {})),
        "errors": [(k, e.strip()[-800:]) for k, e in ckpt.get("errors", {}).items()],
    }


def hf_threads(peers: dict) -> object:
    """The thread count the HF paths ran with (recorded per checkpoint)."""
    for ckpt in peers.get("checkpoints", {}).values():
        threads = ckpt.get("paths_meta", {}).get("b_hf_batched", {}).get("threads")
        if threads:
            return threads
    return (peers.get("matmul", {}).get("start") or {}).get("threads", "—")


def peers_context(peers: dict) -> dict:
    matmul = peers.get("matmul", {})
    start = matmul.get("start") or {}
    shapes = [
        [" x ".join(str(d) for d in s["shape"]), fmt(s["tflops"], 3)]
        for s in start.get("shapes") or []
    ]
    specs = [
        {**spec, "name": name, "sampling": sampling_text(spec["params"])}
        for name, spec in peers.get("workload_specs", {}).items()
    ]
    return {
        "specs": specs,
        "path_labels": list(PATHS.values()),
        "hf_threads": hf_threads(peers),
        "matmul": matmul,
        "matmul_start": start,
        "matmul_end": matmul.get("end") or {},
        "matmul_shapes": shapes,
        "checkpoints": [checkpoint_context(n, c) for n, c in peers.get("checkpoints", {}).items()],
        "skipped": peers.get("skipped", {}),
        "remeasured": peers.get("remeasured", {}),
    }
