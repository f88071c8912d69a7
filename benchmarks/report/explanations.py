"""Why a goal was missed: the facts each explanation template states, from the JSON only."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.goals import goal_checkpoint
from benchmarks.peers import PATHS
from benchmarks.report.sections import hf_threads, measured_machine

Render = Callable[[str, dict], str]


def missed_goals(goals: list[dict], results: dict, render: Render) -> list[dict]:
    """The missed goals, each with the sentences that say where the time went."""
    return [
        {**goal, "sentences": explain(goal, results, render)}
        for goal in goals
        if goal["met"] is False
    ]


def explain(goal: dict, results: dict, render: Render) -> list[str]:
    peers = results.get("peers", {})
    workload = goal.get("workload") or "prediction"
    checkpoint = goal_checkpoint(peers)
    data = peers.get("checkpoints", {}).get(checkpoint, {}).get("workloads", {}).get(workload, {})
    paths = data.get("paths", {})
    key = goal["key"]
    if key == "ttft_under_load":
        tasks = results.get("loadtest", {}).get("task_requests", {})
        facts = {"ttft": tasks.get("ttft_goal", {}), "peak_rps": tasks.get("peak", {})}
        facts["peak_rps"] = facts["peak_rps"].get("requests_per_s")
        return [render("explain_ttft", facts)]
    if key.startswith("label_scoring"):
        return [render("explain_label_scoring", label_scoring_facts(results))]
    if key.startswith("atlas_"):
        return ["The atlas section (atlas_scaling) gives every size's and setup's figures."]
    if key == "starts_reported":
        return ["Some configuration's cold or warm start is missing: see the errors in peers."]
    out = []
    if "gateway" in key:
        out.append(render("explain_gateway", gateway_facts(paths, results)))
    if "hf_batched" in key or "c2s" in key:
        other = "b_hf_batched" if "hf_batched" in key else "a_c2s_one_at_a_time"
        facts = {
            "bulk_share": share_of_peak(paths, "d_bulk_all"),
            "other_label": PATHS[other][:3],
            "other_share": share_of_peak(paths, other),
        }
        out.append(render("explain_same_flops", facts))
    profile = results.get("profile", {}).get("profiles", {})
    roles = profile.get(workload, {}).get("roles", {}) if "gateway" not in key else {}
    if roles:
        out.append(render("explain_profile", profile_facts(workload, roles)))
    bulk = paths.get("d_bulk_all", {})
    if key == "prediction_peak" and bulk:
        facts = {
            "bulk": bulk,
            "peak": peers.get("matmul", {}).get("peak_tflops"),
            "threads": hf_threads(peers),
            "vllm_share": share_of_peak(paths, "c_vllm_offline_all"),
        }
        out.append(render("explain_peak", facts))
    return out


def share_of_peak(paths: dict, key: str) -> float:
    return paths.get(key, {}).get("fraction_of_peak") or 0


def gateway_facts(paths: dict, results: dict) -> dict:
    return {
        "gateway_cps": paths.get("e_gateway_server", {}).get("cells_per_s"),
        "vllm_cps": paths.get("c_vllm_offline_server", {}).get("cells_per_s"),
        "cpus": measured_machine(results).get("logical_cpus", "—"),
    }


def profile_facts(workload: str, roles: dict) -> dict:
    return {
        "workload": workload,
        "roles": [
            {
                "name": role,
                "share": shares["share_of_samples"],
                "top": list(shares["categories"].items())[:4],
            }
            for role, shares in roles.items()
        ],
    }


def label_scoring_facts(results: dict) -> dict:
    scoring = results.get("label_scoring", {})
    best = scoring.get("summary", {}).get("best_block_size")
    setting = next(
        (s for s in scoring.get("settings", []) if s["prefix_caching"] and s["block_size"] == best),
        {},
    )
    return {"best": best, "setting": setting, "k10": setting.get("scored_k10", {})}
