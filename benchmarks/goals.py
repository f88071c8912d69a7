"""The issue's goals, evaluated on the suites' JSON (nothing here measures anything).

Goals are stated on the 410m-shaped checkpoint (``tiny-random`` stands in for it in
``--quick`` runs). Each evaluated goal says what was compared, the measured value, and
whether it is met (``None``: not measured).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: the checkpoint the goals are stated on, then its smoke-test stand-in
GOAL_CHECKPOINTS = ("pythia-410m-random", "tiny-random")


@dataclass(frozen=True)
class Goal:
    key: str
    text: str
    target: str
    measured: float | None
    unit: str
    met: bool | None
    compared: str
    workload: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def goal_checkpoint(peers: dict | None) -> str | None:
    checkpoints = (peers or {}).get("checkpoints", {})
    return next((name for name in GOAL_CHECKPOINTS if name in checkpoints), None)


def _at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def _at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def peers_goals(peers: dict | None) -> list[Goal]:
    name = goal_checkpoint(peers)
    workloads = peers["checkpoints"][name]["workloads"] if name else {}

    def ratio(workload: str, key: str) -> float | None:
        return workloads.get(workload, {}).get("ratios", {}).get(key)

    def fraction(workload: str, path: str) -> float | None:
        value = workloads.get(workload, {}).get("paths", {}).get(path, {}).get("fraction_of_peak")
        return None if value is None else round(100 * value, 1)

    goals = [
        Goal(
            "prediction_peak",
            "Cell type prediction: the bulk path reaches 60% of the bf16 matmul peak",
            ">= 60%",
            fraction("prediction", "d_bulk_all"),
            "% of peak",
            _at_least(fraction("prediction", "d_bulk_all"), 60),
            "(d) bulk, cpu_cores=all: cells/s x FLOPs per cell / measured bf16 matmul peak",
            "prediction",
        ),
    ]
    for workload, key, target, compared in (
        ("prediction", "bulk_all_vs_c2s", 3.0, "(d) bulk, all / (a) C2S's path"),
        ("prediction", "bulk_all_vs_hf_batched", 1.7, "(d) bulk, all / (b) HF batched"),
        ("generation", "bulk_all_vs_c2s", 10.0, "(d) bulk, all / (a) C2S's path"),
        ("generation", "bulk_all_vs_hf_batched", 3.0, "(d) bulk, all / (b) HF batched"),
        ("prediction", "bulk_vs_vllm_all", 0.9, "(d) bulk, all / (c) raw vLLM, all"),
        ("generation", "bulk_vs_vllm_all", 0.9, "(d) bulk, all / (c) raw vLLM, all"),
        ("prediction", "gateway_vs_vllm_server", 0.85, "(e) gateway / (c) raw vLLM, both server"),
        ("generation", "gateway_vs_vllm_server", 0.85, "(e) gateway / (c) raw vLLM, both server"),
    ):
        value = ratio(workload, key)
        text = {
            "bulk_all_vs_c2s": "the bulk path vs C2S's path",
            "bulk_all_vs_hf_batched": "the bulk path vs batched HF",
            "bulk_vs_vllm_all": "the bulk path vs raw vLLM",
            "gateway_vs_vllm_server": "the gateway under load vs raw vLLM",
        }[key]
        goals.append(
            Goal(
                f"{workload}_{key}",
                f"{workload.capitalize()}: {text}",
                f">= {target:g}x",
                value,
                "x",
                _at_least(value, target),
                compared,
                workload,
            )
        )
    return goals


def loadtest_goals(loadtest: dict | None) -> list[Goal]:
    measured = ((loadtest or {}).get("task_requests") or {}).get("ttft_goal") or {}
    value = measured.get("ratio")
    return [
        Goal(
            "ttft_under_load",
            "TTFT p99 at 80% of peak throughput vs idle TTFT",
            "<= 2x",
            value,
            "x",
            _at_most(value, 2.0),
            "open-loop p99 TTFT at 0.8 x closed-loop peak / idle (1 user) p50 TTFT",
        )
    ]


def start_goals(peers: dict | None, loadtest: dict | None) -> list[Goal]:
    """Cold and warm start are a reporting goal: met when every configuration has both."""
    configs, complete = 0, 0
    for checkpoint in (peers or {}).get("checkpoints", {}).values():
        for times in checkpoint.get("starts", {}).values():
            configs += 1
            complete += bool(times.get("cold") and times.get("warm"))
    starts = (loadtest or {}).get("starts")
    if starts is not None:
        configs += 1
        complete += bool(starts.get("cold") and starts.get("warm"))
    return [
        Goal(
            "starts_reported",
            "Engine cold- and warm-start time for every configuration benchmarked",
            "all reported",
            complete,
            f"of {configs} configurations",
            (complete == configs) if configs else None,
            "peers: every engine path and gateway; loadtest: its gateway",
        )
    ]


def label_scoring_goals(scoring: dict | None) -> list[Goal]:
    """Issue 10: scoring K = 10 labels costs at most 1.5x one greedy prediction, as a
    caller waits (one cell) and as a bulk job pays (a batch of cells)."""
    summary = (scoring or {}).get("summary") or {}
    target = summary.get("goal_k10_at_most", 1.5)
    block = summary.get("best_block_size")
    goals = []
    for key, text, value, compared in (
        (
            "label_scoring_latency",
            "Label scoring: K = 10 labels vs one greedy prediction, one cell",
            summary.get("k10_latency_ratio"),
            f"median seconds per cell, prefix caching on, {block}-token KV blocks",
        ),
        (
            "label_scoring_throughput",
            "Label scoring: K = 10 labels vs one greedy prediction, a batch of cells",
            summary.get("k10_throughput_cost_ratio"),
            f"greedy cells/s / scored cells/s, prefix caching on, {block}-token KV blocks",
        ),
    ):
        goals.append(
            Goal(key, text, f"<= {target:g}x", value, "x", _at_most(value, target), compared)
        )
    return goals


def atlas_goals(scaling: dict | None) -> list[Goal]:
    """Issue 15: the bulk job on the wide atlas with the instant engine, at 10k to 1M
    cells, in-process and distributed (`benchmarks.atlas_scaling`)."""
    if not scaling or scaling.get("quick"):
        return []
    targets = scaling.get("goals", {})
    local = [
        r
        for r in scaling.get("runs", [])
        if r.get("mode", "local") == "local" and "answering_cells_per_cpu_s" in r
    ]
    slowest = min(local, key=lambda r: r["answering_cells_per_cpu_s"], default=None)
    ratios = scaling.get("ratios") or {}
    speeds = {label: r["speed"] for label, r in ratios.items()}
    rss = {label: r["peak_rss"] for label, r in ratios.items()}
    drivers = ", ".join(
        f"{label} {r['driver_peak_rss']:.2f}x"
        for label, r in ratios.items()
        if "driver_peak_rss" in r
    )
    cpu_target = targets.get("answering_cells_per_cpu_s", 5000)
    speed_target = targets.get("speed_1m_vs_10k", 0.9)
    rss_target = targets.get("rss_1m_vs_10k", 1.2)
    cpu = None if slowest is None else round(slowest["answering_cells_per_cpu_s"])
    speed = min(speeds.values(), default=None)
    peak = max(rss.values(), default=None)
    return [
        Goal(
            "atlas_cells_per_cpu_s",
            "Atlas: the in-process job's own work per core, at every size",
            f">= {cpu_target:,}",
            cpu,
            "cells per CPU-second",
            _at_least(cpu, cpu_target),
            "the slowest size"
            + ("" if slowest is None else f" ({slowest['cells']:,} cells)")
            + ", to the last shard, instant engine",
        ),
        Goal(
            "atlas_speed_1m_vs_10k",
            "Atlas: 1M-cell cells/s vs 10k, in-process and distributed",
            f">= {speed_target:g}x",
            speed,
            "x",
            _at_least(speed, speed_target),
            "the lowest of: " + ", ".join(f"{k} {v:.2f}x" for k, v in speeds.items()),
        ),
        Goal(
            "atlas_rss_1m_vs_10k",
            "Atlas: 1M-cell peak RSS vs 10k, the largest process of each setup",
            f"<= {rss_target:g}x",
            peak,
            "x",
            _at_most(peak, rss_target),
            "the highest of: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in rss.items())
            + (f"; the distributed driver alone: {drivers}" if drivers else ""),
        ),
    ]


def evaluate(results: dict[str, dict]) -> list[dict]:
    """Every goal, from the suites' results keyed by suite name."""
    peers, loadtest = results.get("peers"), results.get("loadtest")
    goals = [*peers_goals(peers), *loadtest_goals(loadtest), *start_goals(peers, loadtest)]
    goals += label_scoring_goals(results.get("label_scoring"))
    goals += atlas_goals(results.get("atlas_scaling"))
    return [g.to_json() for g in goals]
