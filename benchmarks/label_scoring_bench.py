"""What scoring a label set costs, against one greedy prediction of the same cell.

Run with ``.venv/bin/python -m benchmarks.label_scoring_bench [--cells N] [--quick]``;
writes ``benchmarks/results/label_scoring.json`` and prints its summary as the last line.

Workload: pbmc68k cells (C2S ranking, 200 genes, cell type prediction template 0) on the
Pythia-410m-shaped random checkpoint with the real Pythia tokenizer, i.e. C2S-Pythia-410m's
compute and token counts. Per cell:

- ``greedy``: one greedy prediction as long as the K = 10 set's mean answer (its label,
  ``.`` and EOS; EOS ignored otherwise, as random weights never stop on their own);
- ``scored K``: every label of a K-label set scored by `serving.core.label_sets.LabelScorer`
  (the prompt alone, then one forced-answer request per label), K = 10 (pbmc68k's bulk
  labels) and K = 50 (those plus 40 other blood and immune cell types).

Latency is measured one cell at a time (what a caller waits), throughput as a batch of
cells at once (what a bulk job pays: decoding is then shared by the batch, prefill is
not). Each engine setting is its own engine: prefix caching on with vLLM's CPU default
block (128 tokens) and with smaller blocks, and prefix caching off. Cells differ between
repeats, so only the shared template prefix is ever cached across cells.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.checkpoints import random_checkpoint
from benchmarks.machine import REPO_ROOT, machine_info
from benchmarks.stats import median, ratio
from benchmarks.workload import GENES_PER_CELL, ORGANISM, pbmc_cells

RESULT = REPO_ROOT / "benchmarks" / "results" / "label_scoring.json"
#: Cell Ontology style names of other blood and immune cells, for the 50-label set
OTHER_LABELS = (
    "classical monocyte",
    "non-classical monocyte",
    "intermediate monocyte",
    "naive B cell",
    "memory B cell",
    "plasmablast",
    "plasma cell",
    "naive thymus-derived CD4-positive, alpha-beta T cell",
    "CD4-positive, alpha-beta memory T cell",
    "CD4-positive helper T cell",
    "regulatory T cell",
    "naive thymus-derived CD8-positive, alpha-beta T cell",
    "CD8-positive, alpha-beta memory T cell",
    "effector memory CD8-positive, alpha-beta T cell",
    "gamma-delta T cell",
    "mucosal invariant T cell",
    "natural killer cell",
    "CD16-positive, CD56-dim natural killer cell",
    "CD16-negative, CD56-bright natural killer cell",
    "conventional dendritic cell",
    "plasmacytoid dendritic cell",
    "myeloid dendritic cell",
    "hematopoietic stem cell",
    "common myeloid progenitor",
    "megakaryocyte",
    "platelet",
    "erythrocyte",
    "erythroid progenitor cell",
    "neutrophil",
    "eosinophil",
    "basophil",
    "mast cell",
    "macrophage",
    "innate lymphoid cell",
    "double negative T cell",
    "T follicular helper cell",
    "T-helper 17 cell",
    "activated CD4-positive, alpha-beta T cell",
    "transitional stage B cell",
    "granulocyte",
)


def label_sets() -> dict[int, tuple[str, ...]]:
    """K -> labels: pbmc68k_reduced's ten ``bulk_labels``, then forty more.

    Read when called, not at import: vLLM's CPU worker fails to start when scanpy is
    imported in it, and a spawned worker re-imports the main module.
    """
    import scanpy as sc

    pbmc = sorted(set(sc.datasets.pbmc68k_reduced().obs["bulk_labels"].astype(str)))
    return {10: tuple(pbmc), 50: (*pbmc, *OTHER_LABELS)}


GOAL_RATIO_K10 = 1.5


@dataclass(frozen=True)
class Setting:
    """One engine setting and what is measured on it.

    ``block_size`` ``None`` keeps vLLM's CPU default (128 tokens). Throughput runs K = 10
    only (a batch of K = 50 scorings takes minutes on two cores); without prefix caching
    every answer re-prefills the whole prompt, so that setting runs K = 10 on one cell.
    """

    prefix_caching: bool
    block_size: int | None
    label_sets: tuple[int, ...] = (10, 50)
    cell_fraction: float = 1.0
    throughput: bool = True


SETTINGS = (
    Setting(True, None),
    Setting(True, 64),
    Setting(True, 32),
    Setting(False, None, label_sets=(10,), cell_fraction=0.01, throughput=False),
)
QUICK_SETTINGS = (SETTINGS[0], SETTINGS[2], SETTINGS[3])


def greedy_length(answers: list[tuple[int, ...]]) -> int:
    """Output tokens of a greedy prediction: the mean answer's, EOS included."""
    return max(1, round(sum(len(a) for a in answers) / len(answers)))


def prefill_tokens(prompt_tokens: int, n_answers: int, block: int, caching: bool) -> int:
    """Prompt tokens the engine computes to score ``n_answers`` answers after a prompt: the
    prompt's own request, then each answer's prompt past the full blocks that request
    cached (prefix caching reuses whole blocks only). The answers' own tokens are decode
    steps, which the answers of a cell (and of a batch of cells) share."""
    cached = (prompt_tokens // block) * block if caching else 0
    return prompt_tokens + n_answers * (prompt_tokens - cached)


async def measure(
    checkpoint: Path,
    setting: Setting,
    labels: dict[int, tuple[str, ...]],
    cells: list,
    n_latency: int,
    n_batch: int,
) -> dict:
    """Latency (one cell at a time) and throughput (a batch at once) of greedy and scored
    answers on one engine setting.

    Every answer gets its own cell, so no mode reads another's prompt from the prefix
    cache (only the template prefix all prompts share).
    """
    from serving.core.label_sets import LabelScorer, LabelSet, LabelShape
    from serving.core.pipeline import LocalPipeline
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig, GenerationParams, start_vllm_engine

    config = EngineConfig(
        model=str(checkpoint),
        cpu_cores="all",
        kv_cache_gib=2,
        enable_prefix_caching=setting.prefix_caching,
        block_size=setting.block_size,
    )
    engine = await start_vllm_engine(config)
    try:
        build = BuildStage.from_model(checkpoint)
        stages = LocalPipeline(build, engine, DecodeStage.from_model(checkpoint))
        shape = LabelShape.of(build.builder.registry.get("cell_type_prediction"))

        def prompts_of(group):
            jobs = [
                PromptRequest(
                    "cell_type_prediction",
                    {"cell": c.sentence, "n_genes": GENES_PER_CELL, "organism": ORGANISM},
                )
                for c in group
            ]
            return build.build(jobs)

        eos = engine.limits.eos_token_id
        encoded = {
            k: [(*ids, eos) for ids in build.encode_texts([shape.text([lb]) for lb in labels[k]])]
            for k in setting.label_sets
        }
        greedy_tokens = greedy_length(encoded[10])
        greedy = GenerationParams.greedy(
            max_tokens=greedy_tokens, min_tokens=greedy_tokens, ignore_eos=True
        )
        scorers = {
            k: LabelScorer(stages, LabelSet(labels=labels[k], mode="scored"), eos)
            for k in setting.label_sets
        }

        async def answer(prompt, mode):
            if mode == "greedy":
                await engine.complete(prompt.token_ids, greedy)
            else:
                await scorers[mode].score(shape, prompt.token_ids)

        async def timed(group, mode) -> float:
            started = time.perf_counter()
            await asyncio.gather(*(answer(p, mode) for p in group))
            return time.perf_counter() - started

        block = engine.limits.kv_block_size
        modes = ("greedy", *setting.label_sets)
        n_cells = max(1, round(n_latency * setting.cell_fraction))
        pool = iter(prompts_of(cells))
        for mode in modes[:2]:  # first requests pay one-off costs
            await timed([next(pool)], mode)
        latency: dict = {mode: [] for mode in modes}
        used = []
        for i in range(n_cells):
            for mode in modes:  # interleaved: load changes hit every mode alike
                prompt = next(pool)
                used.append(prompt.prompt_tokens)
                latency[mode].append(await timed([prompt], mode))
                print(f"block {block} cell {i} {mode}: {latency[mode][-1]:.2f} s", file=sys.stderr)
        throughput = {}
        if setting.throughput:
            for mode in ("greedy", 10):
                batch = [next(pool) for _ in range(n_batch)]
                throughput[mode] = n_batch / await timed(batch, mode)
    finally:
        engine.shutdown()
    greedy_s = median(latency["greedy"])
    result = {
        "prefix_caching": setting.prefix_caching,
        "block_size": block,
        "latency_cells": n_cells,
        "greedy_output_tokens": greedy_tokens,
        "greedy_s": round(greedy_s, 4),
        "greedy_all_s": [round(t, 4) for t in latency["greedy"]],
        "greedy_prefill_tokens": round(sum(used) / len(used), 1),
    }
    if throughput:
        result["throughput_batch_cells"] = n_batch
        result["greedy_cells_per_s"] = round(throughput["greedy"], 3)
    for k in setting.label_sets:
        scored = {
            "median_s": round(median(latency[k]), 4),
            "all_s": [round(t, 4) for t in latency[k]],
            "ratio_to_greedy": ratio(median(latency[k]), greedy_s),
            "engine_requests_per_cell": 1 + len(encoded[k]),
            "answer_tokens": sum(len(a) for a in encoded[k]),
            "decode_steps_per_cell": max(len(a) for a in encoded[k]),
            "prefill_tokens_per_cell": round(
                sum(prefill_tokens(n, k, block, setting.prefix_caching) for n in used) / len(used),
                1,
            ),
        }
        scored["prefill_tokens_ratio_to_greedy"] = ratio(
            scored["prefill_tokens_per_cell"], result["greedy_prefill_tokens"]
        )
        if k in throughput:
            scored["cells_per_s"] = round(throughput[k], 3)
            scored["throughput_cost_ratio"] = ratio(throughput["greedy"], throughput[k])
        result[f"scored_k{k}"] = scored
    return result


def compact(run: dict) -> dict:
    """One setting's headline numbers."""
    out = {
        "prefix_caching": run["prefix_caching"],
        "block_size": run["block_size"],
        "greedy_s": run["greedy_s"],
    }
    for key in ("scored_k10", "scored_k50"):
        if key in run:
            k = key.removeprefix("scored_")
            out[f"{k}_s"] = run[key]["median_s"]
            out[f"{k}_ratio"] = run[key]["ratio_to_greedy"]
            out[f"{k}_prefill_tokens_ratio"] = run[key]["prefill_tokens_ratio_to_greedy"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2, help="cells timed one at a time")
    parser.add_argument("--batch", type=int, default=4, help="cells of the throughput batch")
    parser.add_argument("--quick", action="store_true", help="skip the 64-token blocks")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument(
        "--shape", choices=("PYTHIA_410M", "TINY"), default="PYTHIA_410M", help="TINY: smoke run"
    )
    args = parser.parse_args(argv)
    checkpoint, missing = random_checkpoint(args.shape)
    if checkpoint is None:
        sys.exit(f"skipped: {missing}")
    cells = pbmc_cells()
    settings = QUICK_SETTINGS if args.quick else SETTINGS
    started, started_at = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    machine = machine_info()
    labels = label_sets()
    runs = [
        asyncio.run(measure(checkpoint.path, s, labels, cells, args.cells, args.batch))
        for s in settings
    ]
    cached = [r for r in runs if r["prefix_caching"]]
    best = min(cached, key=lambda r: r["scored_k10"]["median_s"])
    summary = {
        "by_setting": [compact(r) for r in runs],
        "best_block_size": best["block_size"],
        "k10_latency_ratio": best["scored_k10"]["ratio_to_greedy"],
        "k10_latency_ratio_to_default_block_greedy": ratio(
            best["scored_k10"]["median_s"], runs[0]["greedy_s"]
        ),
        "k50_latency_ratio": best["scored_k50"]["ratio_to_greedy"],
        "k10_throughput_cost_ratio": best["scored_k10"].get("throughput_cost_ratio"),
        "k10_prefill_tokens_ratio": best["scored_k10"]["prefill_tokens_ratio_to_greedy"],
        "goal_k10_at_most": GOAL_RATIO_K10,
        "goal_met_latency": best["scored_k10"]["ratio_to_greedy"] <= GOAL_RATIO_K10,
        "goal_met_throughput": (best["scored_k10"].get("throughput_cost_ratio") or 99)
        <= GOAL_RATIO_K10,
    }
    result = {
        "suite": "label_scoring",
        "benchmark": "label_scoring",
        "started_at": started_at,
        "command": "python -m benchmarks.label_scoring_bench " + shlex.join(argv or sys.argv[1:]),
        "machine": machine,
        "load_average_at_end": list(os.getloadavg()),
        "checkpoint": checkpoint.to_json(),
        "workload": {
            "cells": "pbmc68k_reduced (C2S ranking); every answer on its own cell",
            "prompt": f"cell_type_prediction template 0, {GENES_PER_CELL} genes",
            "greedy": "as many output tokens as the K = 10 set's mean answer, EOS included",
            "scored": "the prompt alone, then every label's answer ('label.' + EOS) forced",
            "latency": "one cell at a time; median seconds per cell",
            "throughput": "a batch of cells at once (greedy and K = 10); cells per second",
            "label_sets": {str(k): list(v) for k, v in labels.items()},
        },
        "settings": runs,
        "summary": summary,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary))
    return result


if __name__ == "__main__":
    main()
