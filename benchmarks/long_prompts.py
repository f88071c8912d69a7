"""Suite ``long_prompts``: multi-cell prompts that fill most of the 8192-token context.

Two shapes of C2S's multi-cell tissue prediction prompt (template 0), on the 410m-shaped
checkpoint with the real Pythia tokenizer: 20 cells x 100 genes and 5 cells x 400 genes
(about 6,600-7,000 tokens each). pbmc68k_reduced cells have a median of 243 expressed
genes, so 400-gene cells are padded with unexpressed panel genes in a seeded order (the
compute depends only on the token count). Every prompt holds different cells, so prefix
caching helps only with the template. Few requests: each one is seconds of prefill here.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.child_process import ChildFailed, run_child
from benchmarks.flops import request_flops
from benchmarks.suite import (
    SuiteOptions,
    finish_record,
    log,
    random_checkpoint_or_skip,
    start_record,
)
from benchmarks.workload import padded_sentence, panel_genes, pbmc_cells

TASK = "tissue_prediction"
OUTPUT_TOKENS = 16


@dataclass(frozen=True)
class LongPlan:
    checkpoint: str
    shapes: dict[str, tuple[int, int]]  # name -> (cells, genes per cell)
    sequential: int
    concurrent: int


FULL = LongPlan("PYTHIA_410M", {"20x100": (20, 100), "5x400": (5, 400)}, 2, 3)
QUICK = LongPlan("TINY", {"20x100": (20, 100), "5x400": (5, 400)}, 1, 2)


def build_prompts(checkpoint_dir, plan: LongPlan) -> dict:
    """Token ids of every prompt, each over its own cells."""
    from serving.core.prompt_builder import PromptBuilder

    builder = PromptBuilder.from_model(checkpoint_dir)
    cells, genes = pbmc_cells(), panel_genes()
    taken = 0
    prompts = {}
    for name, (n_cells, n_genes) in plan.shapes.items():
        ids = []
        for _ in range(plan.sequential + plan.concurrent):
            group = cells[taken : taken + n_cells]
            taken += n_cells
            sentences = [padded_sentence(c.sentence, n_genes, genes, c.row) for c in group]
            built = builder.build(TASK, {"cells": sentences, "n_genes": n_genes})
            ids.append(list(built.token_ids))
        prompts[name] = {"sequential": ids[: plan.sequential], "concurrent": ids[plan.sequential :]}
    return prompts


def run(options: SuiteOptions) -> dict:
    plan = QUICK if options.quick else FULL
    record = start_record("long_prompts", options)
    checkpoint = random_checkpoint_or_skip(record, options, plan.checkpoint)
    if checkpoint is None:
        return record
    record["task"] = TASK
    log("long_prompts: building prompts")
    prompts = build_prompts(checkpoint.path, plan)
    params = {
        "max_tokens": OUTPUT_TOKENS,
        "min_tokens": OUTPUT_TOKENS,
        "ignore_eos": True,
        "temperature": 0.0,
    }
    config = checkpoint.config()
    record["shapes"] = {}
    for name, (n_cells, n_genes) in plan.shapes.items():
        lengths = [len(ids) for group in prompts[name].values() for ids in group]
        mean_tokens = round(sum(lengths) / len(lengths))
        record["shapes"][name] = {
            "cells": n_cells,
            "genes_per_cell": n_genes,
            "prompt_tokens": lengths,
            "flops_per_prompt": request_flops(config, mean_tokens, OUTPUT_TOKENS),
        }
    log("long_prompts: engine")
    try:
        result = run_child(
            "benchmarks.paths.long_prompt_engine",
            {
                "checkpoint": str(checkpoint.path),
                "cpu_cores": "all",
                "params": params,
                "prompts": prompts,
            },
            "long-prompts-engine",
            timeout_s=1800,
        )
    except ChildFailed as exc:
        record["error"] = str(exc)[-2000:]
        finish_record(record, options)
        return record
    record["engine"] = {k: v for k, v in result.items() if k != "shapes"}
    for name, measured in result["shapes"].items():
        record["shapes"][name].update(measured)
    finish_record(record, options)
    return record
