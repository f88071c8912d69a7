"""The serving_overhead section says why its goals were missed, with this run's numbers."""

from __future__ import annotations

import json

from benchmarks.machine import REPO_ROOT
from benchmarks.report import fill, overhead_context
from benchmarks.report.overhead import occupancy, why_facts

#: a --quick run of the engine_throughput_optimized variant (2026-12-06, loaded machine)
RUN = REPO_ROOT / "tests" / "benchmarks" / "fixtures" / "serving_overhead_eto_quick.json"


def run() -> dict:
    return json.loads(RUN.read_text())


def test_a_loop_splits_its_cpu_into_the_engine_and_everything_outside_it():
    a = run()["a_vllm"]["closed_loop"]  # 11.3623 req/s; engine 28.54, above 4.38, client 4.17
    o = occupancy(a, 2000)
    assert round(o["engine_ms_per_s"], 2) == round(28.54 * 11.3623, 2)
    assert round(o["outside_ms_per_request"], 2) == 8.55
    assert round(o["total_ms_per_s"], 2) == round((28.54 + 8.55) * 11.3623, 2)


def test_only_missed_goals_are_explained_each_with_its_numbers():
    data = run()
    facts = why_facts(data)
    assert facts["missed"] == {"openai_throughput", "cpu_above_engine"}
    assert facts["engine_ingress"] is True  # the variant's AppConfig
    text = fill("serving_overhead", overhead_context(data))
    why = text[text.index("**Why the goals were missed**") :]
    assert "*Throughput at equal concurrency*" in why
    assert "*CPU above the engine.*" in why
    assert "*TTFT" not in why and "*Bulk job" not in why  # met in this run
    a, b = facts["a"], facts["b"]
    # the budget: 2,000 ms/s at 0.9x (a)'s rate, less the engine's ms a request under (a)
    budget = 2000 / (0.9 * 11.3623) - 28.54
    assert round(facts["outside_budget"], 6) == round(budget, 6)
    assert f"only at {budget:.1f} ms or less outside the engine" in why
    assert f"{a['engine_ms_per_s']:,.0f} ms/s beside vLLM's API server" in why
    assert f"(b) {b['outside_ms_per_request']:.1f}." in why
    assert "the engine replica, which holds the app" in why  # ingress: engine


def test_a_run_with_every_goal_met_explains_nothing():
    data = run()
    for goal in data["goals"]:
        goal["met"] = True
    assert "Why the goals were missed" not in fill("serving_overhead", overhead_context(data))
