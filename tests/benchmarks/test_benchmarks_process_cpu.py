"""`benchmarks.process_cpu`: CPU per request by role, and what counts as above the engine."""

from __future__ import annotations

from benchmarks.process_cpu import Reading, per_request_ms


def test_cpu_per_request_by_role_and_above_the_engine():
    before = Reading(
        {1: 1.0, 2: 10.0, 3: 0.5}, {1: "gateway", 2: "engine_worker", 3: "load_client"}
    )
    # pid 4 started during the phase (counted from zero); pid 3 ended (its last reading)
    after = Reading({1: 1.2, 2: 10.5, 4: 0.1}, {1: "gateway", 2: "engine_worker", 4: "proxy"})
    cpu = per_request_ms(before, after, requests=10)
    assert cpu["by_role"] == {
        "engine_worker": 50.0,
        "gateway": 20.0,
        "load_client": 0.0,
        "proxy": 10.0,
    }
    assert cpu["above_engine"] == 30.0  # gateway + proxy: not the engine, not the client
    assert cpu["engine"] == 50.0


def test_cpu_beyond_the_idle_cost_leaves_out_what_roles_spend_without_requests():
    before = Reading({1: 1.0, 2: 2.0, 3: 10.0}, {1: "gateway", 2: "controller", 3: "engine_core"})
    after = Reading({1: 1.4, 2: 2.1, 3: 11.0}, {1: "gateway", 2: "controller", 3: "engine_core"})
    # 10 requests in 2 s; idle, the controller spends 40 ms/s and the gateway 5 ms/s
    idle = {"controller": 40.0, "gateway": 5.0, "engine_core": 100.0}
    cpu = per_request_ms(before, after, requests=10, idle_ms_per_s=idle, seconds=2.0)
    assert cpu["by_role"] == {"controller": 10.0, "engine_core": 100.0, "gateway": 40.0}
    assert cpu["above_engine"] == 50.0
    # gateway 40 - 5 * 2 / 10 = 39; controller 10 - 8 = 2; the engine is never above it
    assert cpu["above_engine_beyond_idle"] == 41.0
