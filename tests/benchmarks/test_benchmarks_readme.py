"""The README's numbers are the ones the benchmarks and the demo checkpoint recorded.

The README's goals table is written by hand; each of its measured values must equal the
goal evaluated from ``benchmarks/results/*.json`` (what BENCHMARKS.md is generated from),
and the demo accuracies quoted in the docs must equal the checkpoint's ``metrics.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.goals import evaluate
from benchmarks.report import load_results

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEMO_METRICS = json.loads((ROOT / "models/c2s-demo-pythia/metrics.json").read_text())

#: README row (its first cell) -> where each of its measured values comes from
ROWS = {
    "bulk job vs raw vLLM, same ids (prediction / generation)": [
        "prediction_bulk_vs_vllm_all",
        "generation_bulk_vs_vllm_all",
    ],
    "gateway under load vs raw vLLM (prediction / generation)": [
        "prediction_gateway_vs_vllm_server",
        "generation_gateway_vs_vllm_server",
    ],
    "bulk job, cell type prediction, share of the bf16 matmul peak": ["prediction_peak"],
    "bulk job vs C2S's path (prediction / 200-token generation)": [
        "prediction_bulk_all_vs_c2s",
        "generation_bulk_all_vs_c2s",
    ],
    "bulk job vs batched HF (prediction / generation)": [
        "prediction_bulk_all_vs_hf_batched",
        "generation_bulk_all_vs_hf_batched",
    ],
    "prompt construction vs C2S's path": ["tokenizer"],
    "scoring 10 labels vs one greedy prediction (one cell / a batch)": [
        "label_scoring_latency",
        "label_scoring_throughput",
    ],
    "gateway TTFT p99 at 80% of peak load vs idle TTFT": ["ttft_under_load"],
    "bulk job on a 25,000-gene atlas, 1M vs 10k cells (cells/s / peak RSS)": [
        "atlas_speed_1m_vs_10k",
        "atlas_rss_1m_vs_10k",
    ],
}


def readme_table() -> dict[str, list[float]]:
    """The README goals table: row name -> its measured numbers, in order."""
    block = README.split("| | measured | goal |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)\s*[x%]", cells[1])]
    return rows


def recorded_values() -> dict[str, float]:
    results = load_results(ROOT / "benchmarks/results")
    values = {g["key"]: g["measured"] for g in evaluate(results)}
    values["tokenizer"] = results["tokenizer"]["goal"]["ratio"]
    return values


def test_every_readme_goal_row_is_known():
    assert set(readme_table()) == set(ROWS)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_readme_goal_numbers_equal_the_benchmark_results(row):
    values = recorded_values()
    assert readme_table()[row] == pytest.approx([values[k] for k in ROWS[row]], abs=0.005)


def test_readme_says_which_machine_measured_the_goals():
    results = load_results(ROOT / "benchmarks/results")
    machine = results["peers"]["machine"]
    assert f"{machine['logical_cpus']}-core {machine['cpu']} machine" in README
    assert ("no AMX" in README) == (not machine["has_amx_bf16"])


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def test_docs_quote_the_demo_checkpoints_held_out_accuracy():
    accuracy = percent(DEMO_METRICS["cell_type_accuracy"])
    card = (ROOT / "models/c2s-demo-pythia/README.md").read_text()
    bulk_doc = (ROOT / "docs/bulk-annotation.md").read_text()
    assert f"**{accuracy}**" in card
    assert f"(the checkpoint's own evaluation: {accuracy})" in bulk_doc
