"""Bulk annotation throughput as a ratio of the raw vLLM engine on the same prompt ids.

For each workload one vLLM CPU engine is started and both paths run on it, alternately,
``--repeats`` times each:

- raw: the prompt ids of every cell (built once, beforehand) sent to the engine all at once
  (``Engine.complete``, the thin adapter over vLLM's ``AsyncLLM``), with the task's own
  sampling settings;
- bulk: ``AnnotationJob`` in-process, as ``c2s annotate`` runs it: input checks, backed
  chunked reading and ranking, prompt building, the engine, decoding and atomic Parquet
  shard commits (``pipeline``), then ``annotated.h5ad``, ``report.json`` and the plots
  (``end_to_end``).

Both paths send the same prompt ids (checked: same prompt token totals) and generate the
same number of tokens. Prefix caching is off so that neither path reuses the other's
prompts. One discarded raw pass warms the engine; then the paths alternate, each going
first in turn. The headline is the median over repeats of raw seconds / bulk seconds of
the two passes of a repeat, which ran back to back (``median_paired_ratio_pipeline``): on
a machine shared with other jobs, load drifts between repeats far more than within one.
Ratios of median cells/s and of CPU seconds (this process and the engine's) are reported
too. The goal is >= 0.9.

Workloads: the embedded demo checkpoint (a random-weight checkpoint of its shape with
Pythia's tokenizer when it is not built yet) on every cell of pbmc68k_reduced, and a
random-weight Pythia-410m (C2S's shape) on a few cells, where the engine's work dominates
as it does with the real model.

Run: ``.venv/bin/python -m benchmarks run --suite bulk [--quick]`` (``make bench`` runs it);
the last line printed is JSON, also written to ``benchmarks/results/bulk.json``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.checkpoints import PYTHIA_TOKENIZER_DIR
from benchmarks.machine import REPO_ROOT
from benchmarks.process_cpu import tree_cpu_seconds
from benchmarks.suite import RESULTS_DIR, SuiteOptions, finish_record, log, start_record

WORK_DIR = REPO_ROOT / "benchmarks" / ".work" / "bulk"
DEMO_DIR = REPO_ROOT / "models" / "c2s-demo-pythia"
GOAL = 0.9
REPEATS = 5
TASK = "cell_type_prediction"
ORGANISM = "Homo sapiens"


@dataclass(frozen=True)
class Workload:
    """One checkpoint and the cells it annotates."""

    name: str
    cells: int
    n_genes: int
    description: str


WORKLOADS = {
    "demo": Workload("demo", 700, 200, "every cell of pbmc68k_reduced, 200 genes"),
    "pythia-410m": Workload("pythia-410m", 8, 200, "8 cells of pbmc68k_reduced, 200 genes"),
}
QUICK_WORKLOAD = Workload("demo", 64, 200, "64 cells of pbmc68k_reduced, 200 genes")


# ---------------------------------------------------------------------------- setup


def checkpoint_for(name: str) -> tuple[Path, str]:
    """The checkpoint directory of a workload, written under ``benchmarks/.work`` when it
    is a random-weight one, and what it is."""
    from serving.testing.random_checkpoint import PYTHIA_410M, GptNeoxShape, write_random_gpt_neox

    if name == "demo" and (DEMO_DIR / "config.json").is_file():
        return DEMO_DIR, "embedded demo checkpoint (models/c2s-demo-pythia)"
    if name == "demo":
        shape = GptNeoxShape(
            num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024
        )
        label = "random weights at the demo checkpoint's shape, Pythia tokenizer (demo not built)"
    else:
        shape, label = PYTHIA_410M, "random weights at C2S-Pythia-410m's shape, Pythia tokenizer"
    path = WORK_DIR / f"random-{name}"
    if not (path / "config.json").is_file():
        write_random_gpt_neox(path, shape, PYTHIA_TOKENIZER_DIR, seed=0)
    return path, label


def dataset(cells: int) -> Path:
    """The first ``cells`` cells of pbmc68k_reduced as an ``.h5ad`` (``.raw`` log-normalised)."""
    import scanpy as sc

    path = WORK_DIR / f"pbmc68k_reduced_{cells}.h5ad"
    if not path.exists():
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        sc.datasets.pbmc68k_reduced()[:cells].copy().write_h5ad(path)
    return path


def summary(runs_s: list[float], cpu_s: list[float], cells: int) -> dict:
    median = statistics.median(runs_s)
    median_cpu = statistics.median(cpu_s)
    return {
        "runs_s": [round(r, 3) for r in runs_s],
        "median_s": round(median, 3),
        "cells_per_s": round(cells / median, 3),
        "cpu_s": [round(c, 3) for c in cpu_s],
        "median_cpu_s": round(median_cpu, 3),
        "cells_per_cpu_s": round(cells / median_cpu, 3),
    }


# ---------------------------------------------------------------------------- paths


async def raw_pass(engine, prompts) -> tuple[float, int]:
    """Every prompt to the engine at once; seconds and output tokens."""
    started = time.perf_counter()
    completions = await asyncio.gather(*(engine.complete(p.token_ids, p.params) for p in prompts))
    elapsed = time.perf_counter() - started
    return elapsed, sum(c.completion_tokens for c in completions)


async def bulk_pass(config, runner) -> tuple[float, float, dict]:
    """One whole job; seconds to the last shard, seconds end to end, and its report."""
    from serving.bulk import AnnotationJob

    started = time.perf_counter()
    result = await AnnotationJob(config, runner).run()
    end_to_end = time.perf_counter() - started
    return result.report["run"]["elapsed_s"], end_to_end, result.report


async def run_workload(workload: Workload, repeats: int) -> dict:
    from serving.bulk import AnnotateConfig, ExecutionConfig, PipelineRunner
    from serving.core.pipeline import LocalPipeline
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig, start_vllm_engine
    from tokenizer_ext import cell_sentences

    checkpoint, label = checkpoint_for(workload.name)
    path = dataset(workload.cells)
    engine_config = EngineConfig(
        model=str(checkpoint), cpu_cores="all", kv_cache_gib=2, enable_prefix_caching=False
    )
    started = time.perf_counter()
    engine = await start_vllm_engine(engine_config)
    engine_start_s = time.perf_counter() - started
    try:
        build = BuildStage.from_model(checkpoint, max_model_len=engine.limits.max_model_len)
        stages = LocalPipeline(build, engine, DecodeStage.from_model(checkpoint))
        sentences = cell_sentences(path, use_raw=True, top_k=workload.n_genes)
        jobs = [
            PromptRequest(TASK, {"cell": s, "n_genes": workload.n_genes, "organism": ORGANISM})
            for s in sentences
        ]
        prompts = build.build(jobs)
        config = AnnotateConfig(
            input=path,
            out=WORK_DIR / f"out-{workload.name}",
            use_raw=True,
            n_genes=workload.n_genes,
            overwrite=True,
            execution=ExecutionConfig(mode="local", engine=engine_config),
        )
        # one whole discarded pass: the engine's first batches of each shape are slower
        await raw_pass(engine, prompts)
        raw, pipeline, end_to_end, outputs = [], [], [], {}
        raw_cpu, bulk_cpu = [], []
        for repeat in range(repeats):
            # alternate which path goes first, so that drifts in load touch both alike
            for path in ("raw", "bulk") if repeat % 2 == 0 else ("bulk", "raw"):
                cpu_before = tree_cpu_seconds()
                if path == "raw":
                    seconds, outputs["raw"] = await raw_pass(engine, prompts)
                    raw.append(seconds)
                    raw_cpu.append(tree_cpu_seconds() - cpu_before)
                    continue
                seconds, total, report = await bulk_pass(config, PipelineRunner(stages))
                bulk_cpu.append(tree_cpu_seconds() - cpu_before)
                pipeline.append(seconds)
                end_to_end.append(total)
                outputs["bulk"] = report["tokens"]["output"]
        bulk_prompt_tokens = report["tokens"]["prompt"]
    finally:
        engine.shutdown()
    raw_prompt_tokens = sum(p.prompt_tokens for p in prompts)
    result = {
        "description": workload.description,
        "checkpoint": {"path": str(checkpoint.relative_to(REPO_ROOT)), "what": label},
        "cells": len(prompts),
        "n_genes": workload.n_genes,
        "engine": engine_config.model_dump(include={"dtype", "cpu_cores", "enforce_eager"})
        | {"prefix_caching": False, "start_s": round(engine_start_s, 1)},
        "mean_prompt_tokens": round(raw_prompt_tokens / len(prompts), 1),
        "same_prompt_ids": raw_prompt_tokens == bulk_prompt_tokens,
        "output_tokens": {"raw": outputs["raw"], "bulk": outputs["bulk"]},
        "raw": summary(raw, raw_cpu, len(prompts)),
        "bulk_pipeline": summary(pipeline, bulk_cpu, len(prompts)),
        "bulk_end_to_end": summary(end_to_end, bulk_cpu, len(prompts)),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    # each repeat's two passes ran back to back: their ratio cancels slow drifts in the
    # machine's load, which medians over separate passes do not
    paired = [r / b for r, b in zip(raw, pipeline, strict=True)]
    result["paired_ratios_pipeline"] = [round(x, 3) for x in paired]
    result["median_paired_ratio_pipeline"] = round(statistics.median(paired), 3)
    raw_speed = result["raw"]["cells_per_s"]
    result["ratio_pipeline"] = round(result["bulk_pipeline"]["cells_per_s"] / raw_speed, 3)
    result["ratio_end_to_end"] = round(result["bulk_end_to_end"]["cells_per_s"] / raw_speed, 3)
    # CPU seconds per cell, bulk over raw (the whole job: outputs included); the engine's
    # threads spin while they wait, so this too grows with contention
    result["ratio_cpu"] = round(
        result["bulk_end_to_end"]["cells_per_cpu_s"] / result["raw"]["cells_per_cpu_s"], 3
    )
    return result


def run(options: SuiteOptions) -> None:
    """The ``bulk`` suite: every workload (the demo checkpoint's alone with ``--quick``)."""
    record = start_record("bulk", options)
    repeats = 1 if options.quick else REPEATS
    record |= {
        "benchmark": "bulk annotation (c2s annotate in-process) vs raw vLLM, same prompt ids",
        "goal": f"bulk cells/s >= {GOAL} x raw",
        "repeats": repeats,
        "workloads": {},
    }
    workloads = [QUICK_WORKLOAD] if options.quick else list(WORKLOADS.values())
    for workload in workloads:
        log(f"bulk: {workload.name}, {workload.cells} cells x {repeats} repeats")
        record["workloads"][workload.name] = asyncio.run(run_workload(workload, repeats))
    finish_record(record, options)


if __name__ == "__main__":
    run(SuiteOptions(quick="--quick" in sys.argv, results_dir=RESULTS_DIR))
