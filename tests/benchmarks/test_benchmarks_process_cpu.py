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
