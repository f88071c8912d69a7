"""The BENCHMARKS.md generator on fixture JSON: tables, ratios and goals (no timing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.goals import evaluate
from benchmarks.report import load_results, write_report

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[str, list[Path], Path]:
    results = tmp_path_factory.mktemp("results")
    for fixture in FIXTURES.glob("*.json"):
        shutil.copy(fixture, results)
    out = results.parent / "BENCHMARKS.md"
    plots = write_report(results, out)
    return out.read_text(), plots, results


def row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell`` (the first such row)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading)
    level = "\n" + "#" * max(1, len(heading) - len(heading.lstrip("#"))) + " "
    ends = [text.find(m, start + len(heading)) for m in ("\n## ", level)]
    ends = [e for e in ends if e != -1]
    return text[start : min(ends) if ends else None]


def test_goals_table_holds_the_measured_ratios_and_their_status(report):
    text, _, _ = report
    goals = section(text, "## Goals")
    assert row(goals, "Prediction: the bulk path vs C2S's path")[1:4] == [
        ">= 3x",
        "4.50 x",
        "**met**",
    ]
    assert row(goals, "Prediction: the bulk path vs batched HF")[2:4] == ["1.50 x", "**missed**"]
    assert row(goals, "Generation: the bulk path vs C2S's path")[2:4] == ["48.00 x", "**met**"]
    assert row(goals, "Generation: the bulk path vs batched HF")[2:4] == ["9.60 x", "**met**"]
    # 0.45 cells/s x 450 GFLOP / 0.4 TFLOP/s
    peak = row(goals, "Cell type prediction: the bulk path reaches 60% of the bf16 matmul peak")
    assert peak[2:4] == ["50.60 % of peak", "**missed**"]
    assert row(goals, "Prediction: the gateway under load vs raw vLLM")[2:4] == [
        "0.80 x",
        "**missed**",
    ]
    assert row(goals, "TTFT p99 at 80% of peak throughput vs idle TTFT")[2:4] == [
        "3.00 x",
        "**missed**",
    ]
    starts = row(goals, "Engine cold- and warm-start time for every configuration benchmarked")
    assert starts[2:4] == ["5 of 5 configurations", "**met**"]


def test_missed_goals_are_explained_and_met_ones_are_not(report):
    text, _, _ = report
    why = section(text, "## Why goals were missed")
    assert "**Prediction: the bulk path vs batched HF**" in why
    assert "GEMM (oneDNN matmul) 60%" in why  # from the profile suite
    assert "p99 TTFT was 2,400 ms" in why
    assert "**Generation: the bulk path vs C2S's path**" not in why


def test_peers_table_rows_are_medians_with_ratios_against_the_peers(report):
    text, _, _ = report
    prediction = section(text, "#### pythia-410m-random: prediction")
    bulk = row(prediction, "(d) our bulk job (in process), cpu_cores=all")
    # cells/s, output tok/s, total tok/s, vs (a), vs (b), vs (c) same setting, % of peak
    assert bulk[1:8] == ["0.450", "7.2", "331.2", "4.50", "1.50", "0.90", "50.6"]
    gateway = row(prediction, "(e) our gateway (c2s serve) under load, cpu_cores=server")
    assert gateway[6] == "0.80"
    assert (
        row(prediction, "(b) HF generate, batched (best swept batch size)")[-1] == "3 batch size 4"
    )
    assert "FLOPs per cell 450.0 GFLOP (prefill 440.0, decode 10.0)" in prediction
    assert "batch 2: 0.200 cells/s, batch 4: 0.300 cells/s" in prediction
    starts = section(text, "Engine starts on `pythia-410m-random`")
    assert row(starts, "gateway (c2s serve), cpu_cores=all")[1:] == [
        "60.0", "—", "45.0", "—"
    ]  # fmt: skip
    engine = row(starts, "vLLM engine, cpu_cores=all (cold: (c)'s start, warm: (d)'s)")
    assert engine[1:] == ["40.0", "30.0", "20.0", "15.0"]


def test_load_test_tables_show_latency_percentiles_knee_and_errors(report):
    text, _, _ = report
    load = section(text, "## Load test")
    assert row(load, "1 (idle)")[4] == "800 / 1,200"
    assert row(load, "8")[1:4] == ["16", "2.100", "33.6"]
    assert "**Knee**: 4 users, 2.000 req/s at p50 E2E 2,000 ms" in load
    assert row(load, "1.680")[1:4] == ["80%", "8", "1.646"]
    assert row(load, "poisson_80pct_of_peak")[1:5] == ["16", "0", "1.700", "27.2"]


def test_long_prompts_tokenizer_and_machine_sections(report):
    text, _, _ = report
    long_prompts = section(text, "## Long prompts")
    # 0.05 prompts/s x 5.01 TFLOP / 0.4 TFLOP/s
    assert row(long_prompts, "20 cells x 100 genes")[1:] == [
        "6,500-6,700", "5.01", "20.00", "21.00", "2 in 40.0 s", "0.050", "330", "62.6"
    ]  # fmt: skip
    tokenizer = section(text, "## Prompt construction")
    assert row(tokenizer, "ours_stable_ids_lists")[1:4] == ["50,000", "20.0", "50.0"]
    machine = section(text, "## Machine")
    assert row(machine, "Test EPYC")[1:5] == ["2", "24.0 GiB", "yes", "no"]
    assert "Skipped `demo`" in text


def test_a_plot_per_suite_and_goals_from_json_only(report):
    _, plots, results = report
    assert sorted(p.name for p in plots) == [
        "label_scoring.png", "loadtest.png", "long_prompts.png", "peers.png", "profile.png",
        "tokenizer.png",
    ]  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in plots)
    goals = {g["key"]: g for g in evaluate(load_results(results))}
    assert goals["generation_bulk_vs_vllm_all"]["measured"] == 0.96
    assert goals["generation_bulk_vs_vllm_all"]["met"] is True


def test_an_empty_results_folder_gives_a_stub(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert write_report(tmp_path, out) == []
    assert "No results yet" in out.read_text()


def test_label_scoring_goals_and_table_come_from_its_result(report):
    text, _, _ = report
    goals = section(text, "## Goals")
    one = row(goals, "Label scoring: K = 10 labels vs one greedy prediction, one cell")
    assert one[1:4] == ["<= 1.5x", "1.20 x", "**met**"]
    assert "32-token KV blocks" in one[4]
    batch = row(goals, "Label scoring: K = 10 labels vs one greedy prediction, a batch of cells")
    assert batch[2:4] == ["1.80 x", "**missed**"]
    why = section(text, "## Why goals were missed")
    assert "sends 11 requests per cell" in why
    assert "1.22x the greedy prediction's tokens (880 vs 720)" in why
    assert "Its 9 decode steps" in why
    table_ = section(text, "## Label scoring")
    assert row(table_, "on")[1:] == [
        "128", "2.00", "6.00", "3.00", "1.89", "5.00", "40.00", "20.00"
    ]  # fmt: skip
    assert row(table_, "off")[4:] == ["30.00", "58.00", "—", "—", "—"]


def test_machine_facts_in_the_prose_come_from_the_json(report):
    # the fixture ran HF on 3 threads and the matmul on 4; nothing says "2 threads"
    text, _, _ = report
    peers = section(text, "## Peers")
    assert "`use_cache=True` on 3 threads" in peers
    assert "**bf16 matmul peak** (torch, 4 threads," in peers
    assert "reaches alone on 3 threads" in section(text, "## Why goals were missed")
    assert "2 threads" not in text


def test_atlas_scaling_rows_and_goals_come_from_its_result(report):
    text = section(report[0], "## Atlas scale")
    # cells/s, to the last shard and end to end; CPU speed to the last shard, its goal
    # (5,000), its runs, cores busy, with the outputs; peak RSS to the last shard, with
    # the outputs
    assert row(text, "1,000,000")[1:10] == [
        "in-process",
        "1,900",
        "1,500",
        "4,900",
        "**missed**",
        "1",
        "—",
        "3,100",
        "600",
    ]
    assert row(text, "10,000")[4:8] == ["5,200", "**met**", "3: 4,800-5,600", "1.05"]
    assert "every figure is the median of its runs" in text
    assert "goal >= 5,000" in text
    table = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
    distributed = [r for r in table if r[0] == "1,000,000" and r[1].startswith("distributed")]
    # the CPU goal is not the distributed runs'; per-process RSS: driver / largest Ray
    assert [r[1] for r in distributed] == ["distributed, 1 worker", "distributed, 2 workers"]
    assert [r[5] for r in distributed] == ["—", "—"]
    assert [r[-1] for r in distributed] == ["320 / 460", "330 / 470"]
    scaling = text[text.index("Scaling against 10k") :]
    ratios = row(scaling, "in-process")
    # speed, its goal, CPU-second ratio (3,100 / 3,000), whole-job RSS, its goal, answering
    assert ratios[2:8] == ["0.95", "**met**", "1.03", "1.30", "**missed**", "1.25"]
    two = row(scaling, "distributed, 2 workers")
    assert two[1:9] == ["1,000,000", "1.40", "**met**", "1.00", "1.09", "**met**", "—", "1.10"]


def test_atlas_scaling_says_what_the_cores_allow_two_workers(report):
    text = section(report[0], "## Atlas scale")
    workers = text[text.index("Two workers against one") :]
    # 10k: the 1-worker run kept 1.25 cores busy, so 2 cores allow 1.6x (< 1.7): the goal
    # is not judged; 1M: they allow 1.82x, and 1.75x meets it
    assert row(workers, "10,000")[1:] == [
        "2",
        "1.50",
        "1.25",
        "1.60",
        "0.94",
        "2 cores allow 1.60x",
        "yes",
    ]
    assert row(workers, "1,000,000")[1:] == ["2", "1.75", "1.10", "1.82", "0.96", "**met**", "yes"]


def test_atlas_goals_join_the_goals_table(report):
    goals = section(report[0], "## Goals")
    cpu = row(goals, "Atlas: the in-process job's own work per core, at every size")
    assert cpu[1:4] == [">= 5,000", "4,900 cells per CPU-second", "**missed**"]
    assert "(1,000,000 cells)" in cpu[4]
    speed = row(goals, "Atlas: 1M-cell cells/s vs 10k, in-process and distributed")
    assert speed[1:4] == [">= 0.9x", "0.95 x", "**met**"]
    rss = row(goals, "Atlas: 1M-cell peak RSS vs 10k, the largest process of each setup")
    assert rss[1:4] == ["<= 1.2x", "1.30 x", "**missed**"]
    assert rss[4].endswith("the distributed driver alone: distributed, 2 workers 1.10x")
    why = section(report[0], "## Why goals were missed")
    assert "The atlas section (atlas_scaling)" in why


def test_a_sizes_figures_are_the_medians_of_its_runs():
    from benchmarks.atlas_scaling import median_figures

    runs = [
        {"cells": 10_000, "answering_cells_per_cpu_s": cpu, "peak_rss_mib": rss, "command": "x"}
        for cpu, rss in ((5600.0, 300.0), (4800.0, 320.0), (5200.0, 310.0))
    ]
    figures = median_figures(runs)
    assert figures == {
        "cells": 10_000,
        "answering_cells_per_cpu_s": 5200.0,
        "peak_rss_mib": 310.0,
        "command": "x",
        "repeats": 3,
        "answering_cells_per_cpu_s_runs": [5600.0, 4800.0, 5200.0],
    }


def test_atlas_scaling_ratios_compare_the_largest_size_with_10k():
    from benchmarks.atlas_scaling import scaling_ratios

    runs = [
        {
            "cells": 10_000,
            "workers": 1,
            "cells_per_s": 100.0,
            "peak_rss_mib": 50,
            "max_rss_mib": 60,
        },
        {
            "cells": 100_000,
            "workers": 1,
            "cells_per_s": 90.0,
            "peak_rss_mib": 55,
            "max_rss_mib": 66,
        },
        {
            "cells": 10_000,
            "mode": "distributed",
            "workers": 2,
            "cells_per_s": 50.0,
            "peak_rss_mib": 80,
        },
        {
            "cells": 100_000,
            "mode": "distributed",
            "workers": 2,
            "cells_per_s": 60.0,
            "peak_rss_mib": 84,
        },
    ]
    assert scaling_ratios(runs) == {
        "in-process": {"cells": 100_000, "speed": 0.9, "peak_rss": 1.1, "max_rss": 1.1},
        "distributed, 2 workers": {"cells": 100_000, "speed": 1.2, "peak_rss": 1.05},
    }
    runs[2]["driver_peak_rss_mib"], runs[3]["driver_peak_rss_mib"] = 300, 330
    assert scaling_ratios(runs)["distributed, 2 workers"]["driver_peak_rss"] == 1.1
    runs[0]["answering_peak_rss_mib"], runs[1]["answering_peak_rss_mib"] = 40, 46
    assert scaling_ratios(runs)["in-process"]["answering_peak_rss"] == 1.15


def test_two_workers_are_judged_against_what_the_cores_allow():
    from benchmarks.atlas_scaling import worker_scaling

    def run(workers, cells_per_s, cores_busy):
        return {
            "cells": 100_000,
            "mode": "distributed",
            "workers": workers,
            "cells_per_s": cells_per_s,
            "cores_busy": cores_busy,
        }

    local = {"cells": 100_000, "mode": "local", "workers": 1, "cells_per_s": 900.0}
    scaling = worker_scaling([local, run(1, 100.0, 1.25), run(2, 150.0, 1.9)], cores=2)
    assert scaling == [
        {
            "cells": 100_000,
            "workers": 2,
            "speed_vs_1": 1.5,
            "cores": 2,
            "cores_busy_1": 1.25,
            "cores_allow": 1.6,
            "share_of_allowed": 0.938,
        }
    ]
    # never more than the worker count, however idle the 1-worker run
    assert worker_scaling([run(1, 100.0, 0.5), run(2, 190.0, 1.0)], cores=8)[0]["cores_allow"] == 2
    assert worker_scaling([local, run(2, 150.0, 1.9)], cores=2) == []


def test_the_distributed_section_shows_each_part_from_its_result(report):
    text = section(report[0], "## The bulk job distributed")
    assert row(text, "distributed_2_workers")[1:] == ["720.0", "320", "360", "NO"]
    assert row(text, "local")[1:] == ["500.0", "300", "100", "-"]
    assert "Two workers over one: 1.80x" in text
    cores = json.loads((FIXTURES / "distributed.json").read_text())["machine"]["usable_cpus"]
    assert f"the machine has {cores} cores" in text
    assert "Not measured: the engine did not start in time" in text
