"""Suite ``peers``: the same cells on the same checkpoint through five paths, as ratios.

Paths: (a) C2S's own (HF generate one cell at a time), (b) HF generate batched at its
best swept batch size, (c) raw vLLM ``LLM.generate``, (d) our bulk path, (e) our gateway
(``c2s serve``) with every cell of a run in flight. Engine paths run with both thread
settings (``cpu_cores="server"``: vLLM's default binding, one core left free; ``"all"``).
Each engine configuration starts twice: (c) first (cold), (d) right after (warm); each
gateway is launched, measured, stopped and launched again (warm).
The machine's bf16 matmul throughput is measured at the start and the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.checkpoints import WORK_DIR, Checkpoint, demo_checkpoint, random_checkpoint
from benchmarks.child_process import ChildFailed, run_child
from benchmarks.flops import request_flops
from benchmarks.gateway_process import GatewayFailed, GatewayProcess
from benchmarks.stats import median, ratio
from benchmarks.suite import SuiteOptions, finish_record, log, start_record
from benchmarks.workload import WORKLOADS, CellPlan, build_workload, pbmc_cells, write_json

SETTINGS = ("server", "all")
CHILD_LIMIT_S = 1800


@dataclass(frozen=True)
class CheckpointPlan:
    """Cells and HF batch sizes for one checkpoint."""

    cells: dict[str, CellPlan]
    batch_sizes: dict[str, list[int]]
    #: the gateway is measured with these engine settings (it serves with "server")
    gateway_settings: tuple[str, ...] = SETTINGS


@dataclass(frozen=True)
class PeersPlan:
    checkpoints: dict[str, CheckpointPlan]
    hf_threads: int = 2
    matmul: dict = field(default_factory=lambda: {"threads": 2, "repeats": 5, "min_s": 0.5})


FULL = PeersPlan(
    checkpoints={
        "demo": CheckpointPlan(
            cells={
                "prediction": CellPlan(32, 3, 4, 16),
                "generation": CellPlan(16, 3, 2, 8),
            },
            batch_sizes={"prediction": [8, 16, 32], "generation": [4, 8, 16]},
        ),
        # 16 cells a run: a bulk job batches many cells, and so may HF at its best size
        "pythia-410m-random": CheckpointPlan(
            cells={
                "prediction": CellPlan(16, 2, 2, 6),
                "generation": CellPlan(16, 2, 1, 2),
            },
            batch_sizes={"prediction": [4, 8, 16], "generation": [4, 8, 16]},
            gateway_settings=("server",),
        ),
    }
)
QUICK = PeersPlan(
    checkpoints={
        "demo": CheckpointPlan(
            cells={"prediction": CellPlan(4, 1, 1, 2), "generation": CellPlan(2, 1, 1, 1)},
            batch_sizes={"prediction": [2, 4], "generation": [2]},
        ),
        "tiny-random": CheckpointPlan(
            cells={"prediction": CellPlan(4, 1, 1, 2), "generation": CellPlan(2, 1, 1, 1)},
            batch_sizes={"prediction": [2, 4], "generation": [2]},
        ),
    },
    matmul={"threads": 2, "repeats": 2, "min_s": 0.2},
)

#: engine configurations whose starts are reported, with what they are
STARTS = {
    "engine_server": "vLLM engine, cpu_cores=server (cold: (c)'s start, warm: (d)'s)",
    "engine_all": "vLLM engine, cpu_cores=all (cold: (c)'s start, warm: (d)'s)",
    "e_gateway_server": "gateway (c2s serve), cpu_cores=server",
    "e_gateway_all": "gateway (c2s serve), cpu_cores=all",
}
#: path keys, in report order, with what they are
PATHS = {
    "a_c2s_one_at_a_time": "(a) C2S's path: HF generate, one cell at a time",
    "b_hf_batched": "(b) HF generate, batched (best swept batch size)",
    "c_vllm_offline_server": "(c) raw vLLM LLM.generate, cpu_cores=server",
    "c_vllm_offline_all": "(c) raw vLLM LLM.generate, cpu_cores=all",
    "d_bulk_server": "(d) our bulk job (in process), cpu_cores=server",
    "d_bulk_all": "(d) our bulk job (in process), cpu_cores=all",
    "e_gateway_server": "(e) our gateway (c2s serve) under load, cpu_cores=server",
    "e_gateway_all": "(e) our gateway (c2s serve) under load, cpu_cores=all",
}


def load_checkpoint(name: str) -> tuple[Checkpoint | None, str | None]:
    if name == "demo":
        return demo_checkpoint()
    shape = {"pythia-410m-random": "PYTHIA_410M", "tiny-random": "TINY"}[name]
    return random_checkpoint(shape)


def path_summary(child: dict, workload: str) -> dict:
    """Medians over a path's repeats for one workload, and its raw runs."""
    measured = child["workloads"][workload]
    runs = measured["runs"]
    out = {
        "cells_per_s": median([r["cells_per_s"] for r in runs]),
        "output_tokens_per_s": median([r["output_tokens_per_s"] for r in runs]),
        "total_tokens_per_s": median([r["total_tokens_per_s"] for r in runs]),
        "repeats": len(runs),
        "repeat_unit": measured["repeat_unit"],
        "runs": runs,
        "command": child.get("command"),
    }
    for key in (
        "batch_size",
        "sweep",
        "errors_by_status",
        "prompts_differing_from_workload",
        "runs_with_other_prompt_tokens",
        "how",
    ):
        if key in measured:
            out[key] = measured[key]
    if all("end_to_end_cells_per_s" in r for r in runs):
        out["end_to_end_cells_per_s"] = median([r["end_to_end_cells_per_s"] for r in runs])
    return out


def measure_checkpoint(checkpoint: Checkpoint, plan: CheckpointPlan, hf_threads: int) -> dict:
    """Every path on one checkpoint; a failed path is recorded, not fatal."""
    log(f"peers: {checkpoint.name}: building prompts")
    cells = pbmc_cells()
    files_dir = WORK_DIR / "workloads" / f"peers-{checkpoint.name}"
    workload = build_workload(checkpoint.path, plan.cells, cells, files_dir)
    workload_file = write_json(WORK_DIR / "workloads" / f"peers-{checkpoint.name}.json", workload)
    names = list(plan.cells)
    base = {
        "checkpoint": str(checkpoint.path),
        "workload_file": str(workload_file),
        "workloads": names,
    }
    children: dict[str, dict] = {}
    starts: dict[str, dict] = {}
    errors: dict[str, str] = {}

    def child(key: str, module: str, spec: dict) -> dict | None:
        log(f"peers: {checkpoint.name}: {key}")
        try:
            result = run_child(
                module, {**base, **spec}, f"peers-{checkpoint.name}-{key}", timeout_s=CHILD_LIMIT_S
            )
        except ChildFailed as exc:
            errors[key] = str(exc)[-2000:]
            log(f"peers: {key} failed: {str(exc)[:300]}")
            return None
        return result

    hf_one = {n: p.one_at_a_time_cells for n, p in plan.cells.items()}
    for key, spec in (
        ("a_c2s_one_at_a_time", {"mode": "one_at_a_time", "one_at_a_time_cells": hf_one}),
        ("b_hf_batched", {"mode": "batched", "batch_sizes": plan.batch_sizes}),
    ):
        result = child(key, "benchmarks.paths.hf_generate", {**spec, "threads": hf_threads})
        if result:
            children[key] = result
    for setting in SETTINGS:
        # (c) and (d) start the same engine (same arguments and binding): (c)'s start is
        # the configuration's first in the run (cold), (d)'s a restart right after (warm)
        for key, module in (
            (f"c_vllm_offline_{setting}", "benchmarks.paths.vllm_offline"),
            (f"d_bulk_{setting}", "benchmarks.paths.bulk_job"),
        ):
            result = child(key, module, {"cpu_cores": setting})
            if result:
                children[key] = result
        starts[f"engine_{setting}"] = start_times(
            children.get(f"c_vllm_offline_{setting}"), children.get(f"d_bulk_{setting}")
        )
        if setting not in plan.gateway_settings:
            continue
        key = f"e_gateway_{setting}"
        result, start = measure_gateway(checkpoint, setting, base, errors)
        if result:
            children[key] = result
        starts[key] = start

    config = checkpoint.config()
    out = {
        "checkpoint": checkpoint.to_json(),
        "workloads": {},
        "starts": starts,
        "errors": errors,
        "not_run": [f"e_gateway_{s}" for s in SETTINGS if s not in plan.gateway_settings],
    }
    for name in names:
        prompt_tokens = workload[name]["mean_prompt_tokens"]
        flops = request_flops(config, round(prompt_tokens), WORKLOADS[name].output_tokens)
        paths = {key: path_summary(children[key], name) for key in PATHS if key in children}
        out["workloads"][name] = {
            "plan": workload[name]["plan"],
            "mean_prompt_tokens": prompt_tokens,
            "output_tokens": WORKLOADS[name].output_tokens,
            "flops_per_cell": flops,
            "paths": paths,
            "ratios": path_ratios(paths),
        }
    out["paths_meta"] = {
        key: {k: v for k, v in c.items() if k != "workloads"} for key, c in children.items()
    }
    return out


def start_times(cold: dict | None, warm: dict | None) -> dict:
    """Cold start (the configuration's first in this run) and warm start (a restart)."""

    def times(result: dict | None) -> dict | None:
        if not result:
            return None
        return {
            "launch_to_ready_s": result.get("launch_to_ready_s"),
            "engine_start_s": result.get("engine_start_s"),
        }

    return {"cold": times(cold), "warm": times(warm)}


def measure_gateway(
    checkpoint: Checkpoint, setting: str, base: dict, errors: dict
) -> tuple[dict | None, dict]:
    """Path (e) on a fresh ``c2s serve`` (cold start), then a restart (warm start)."""
    key = f"e_gateway_{setting}"
    name = f"peers-{checkpoint.name}-{key}"
    result, cold, warm = None, None, None
    log(f"peers: {checkpoint.name}: {key}")
    try:
        with GatewayProcess(checkpoint.path, setting, name) as gateway:
            cold = {"launch_to_healthy_s": gateway.start_s}
            result = run_child(
                "benchmarks.paths.gateway_load",
                {**base, "url": gateway.url},
                f"{name}-client",
                timeout_s=CHILD_LIMIT_S,
            )
            result["gateway"] = gateway.describe()
        with GatewayProcess(checkpoint.path, setting, f"{name}-warm") as gateway:
            warm = {"launch_to_healthy_s": gateway.start_s}
    except (GatewayFailed, ChildFailed) as exc:
        errors[key] = str(exc)[-2000:]
        log(f"peers: {key} failed: {str(exc)[:300]}")
    return result, {"cold": cold, "warm": warm}


def path_ratios(paths: dict) -> dict:
    """Cells/s ratios the goals are stated in (``None`` where a path is missing)."""

    def rate(key: str) -> float | None:
        return paths.get(key, {}).get("cells_per_s")

    return {
        "bulk_all_vs_c2s": ratio(rate("d_bulk_all"), rate("a_c2s_one_at_a_time")),
        "bulk_all_vs_hf_batched": ratio(rate("d_bulk_all"), rate("b_hf_batched")),
        "vllm_all_vs_c2s": ratio(rate("c_vllm_offline_all"), rate("a_c2s_one_at_a_time")),
        "vllm_all_vs_hf_batched": ratio(rate("c_vllm_offline_all"), rate("b_hf_batched")),
        "bulk_vs_vllm_all": ratio(rate("d_bulk_all"), rate("c_vllm_offline_all")),
        "bulk_vs_vllm_server": ratio(rate("d_bulk_server"), rate("c_vllm_offline_server")),
        "gateway_vs_vllm_server": ratio(rate("e_gateway_server"), rate("c_vllm_offline_server")),
        "gateway_vs_vllm_all": ratio(rate("e_gateway_all"), rate("c_vllm_offline_all")),
        "vllm_all_vs_server": ratio(rate("c_vllm_offline_all"), rate("c_vllm_offline_server")),
        "hf_batched_vs_c2s": ratio(rate("b_hf_batched"), rate("a_c2s_one_at_a_time")),
    }


def measure_matmul(plan: PeersPlan, label: str) -> dict | None:
    log(f"peers: bf16 matmul ({label})")
    try:
        return run_child("benchmarks.matmul", plan.matmul, f"peers-matmul-{label}", timeout_s=600)
    except ChildFailed as exc:
        log(f"peers: matmul failed: {exc}")
        return None


def run(options: SuiteOptions) -> dict:
    plan = QUICK if options.quick else FULL
    record = start_record("peers", options)
    record["paths"] = PATHS
    record["workload_specs"] = {
        name: {"task": w.task, "output_tokens": w.output_tokens, "params": w.params()}
        for name, w in WORKLOADS.items()
    }
    matmul_start = measure_matmul(plan, "start")
    record["checkpoints"], record["skipped"] = {}, {}
    for name, checkpoint_plan in plan.checkpoints.items():
        checkpoint, reason = load_checkpoint(name)
        if checkpoint is None:
            record["skipped"][name] = reason
            log(f"peers: skipping {name}: {reason}")
            continue
        record["checkpoints"][name] = measure_checkpoint(
            checkpoint, checkpoint_plan, plan.hf_threads
        )
    matmul_end = measure_matmul(plan, "end")
    peaks = [m["peak_tflops"] for m in (matmul_start, matmul_end) if m]
    record["matmul"] = {
        "start": matmul_start,
        "end": matmul_end,
        "peak_tflops": max(peaks) if peaks else None,
    }
    add_peak_fractions(record)
    finish_record(record, options)
    return record


def add_peak_fractions(record: dict) -> None:
    """Achieved FLOP/s of every path as a fraction of the measured bf16 matmul peak."""
    peak = record["matmul"]["peak_tflops"]
    for checkpoint in record["checkpoints"].values():
        for workload in checkpoint["workloads"].values():
            flops = workload["flops_per_cell"]["total"]
            for path in workload["paths"].values():
                rate = path.get("cells_per_s")
                path["achieved_tflops"] = round(rate * flops / 1e12, 4) if rate else None
                path["fraction_of_peak"] = (
                    round(rate * flops / (peak * 1e12), 4) if rate and peak else None
                )
