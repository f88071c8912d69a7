"""The step-by-step rows of suite serving_overhead come from each variant's own run."""

from __future__ import annotations

import json
import shutil

from benchmarks import overhead_steps
from benchmarks.machine import REPO_ROOT

RUN = REPO_ROOT / "tests" / "benchmarks" / "fixtures" / "serving_overhead_default_quick.json"


def test_a_run_becomes_its_variants_row_with_ratios_to_its_own_vllm_server(tmp_path, monkeypatch):
    monkeypatch.setattr(overhead_steps, "STEPS_DIR", tmp_path / "steps")
    (tmp_path / "steps").mkdir()
    monkeypatch.setattr(overhead_steps, "REPO_ROOT", tmp_path)
    results = tmp_path / "serving_overhead.json"
    results.write_text(json.dumps({"suite": "serving_overhead", "steps": {"note": "n"}}))
    run = tmp_path / "quick.json"
    shutil.copyfile(RUN, run)
    assert overhead_steps.add_step(run, results) == "default"
    data = json.loads(results.read_text())
    assert data["steps"]["note"] == "n"
    row = data["steps"]["variants"]["default"]
    assert row["file"] == "steps/default.json"
    assert (row["a_requests_per_s"], row["a_cpu_above_engine"]) == (16.3654, 3.33)
    assert row["completions_stream"] == {
        "cpu_above_engine_beyond_idle": None,  # a run from before idle CPU was measured
        "beyond_idle_ratio_to_a": None,
        "requests_per_s": 14.13,
        "cpu_above_engine": 33.55,
        "cpu_ratio_to_a": 10.08,
        "throughput_ratio_to_a": 0.86,
        "by_role": {
            "gateway": 12.92,
            "proxy": 9.17,
            "builder": 0.42,
            "decoder": 0.62,
            "engine_replica": 5.63,
            "controller": 2.08,
        },
    }
    assert row["completions_plain"]["cpu_ratio_to_a"] == 6.82
    assert json.loads((tmp_path / "steps" / "default.json").read_text()) == json.loads(
        RUN.read_text()
    )
