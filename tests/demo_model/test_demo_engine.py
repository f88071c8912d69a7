"""Every task on the real vLLM engine with the demo checkpoint, and held-out accuracy.

Prompts come from `PromptBuilder`, answers go through `Decoder`: the served path. The
accuracy floor sits below the accuracy measured for the model card (see its README), far
above the 34.3% majority baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_asyncio

from models.training.evaluate import EVAL_GENES, run_examples
from models.training.examples import ExampleDrawer
from models.training.validity import KnownLabels, is_valid
from serving.core.prompt_builder import PromptBuilder
from serving.core.stages import Decoder
from serving.core.tasks import default_registry
from serving.core.tasks.results import TaskResult

pytestmark = pytest.mark.engine

DEMO = Path(__file__).resolve().parents[2] / "models" / "c2s-demo-pythia"
#: measured on the 140 held-out cells (metrics.json); the floor leaves room for
#: bf16 kernel differences between machines
ACCURACY_FLOOR = 0.70
MAJORITY = 0.343
#: issue 17's bar for the committed checkpoint's evaluation: 115 of the 140 (82.1%)
CARD_BAR = 115 / 140
#: measured validity is reported per task in the model card; every task must mostly work
VALIDITY_FLOOR = 0.5
EXAMPLES_PER_TASK = 6


@pytest.fixture(scope="module")
def data():
    from models.training.dataset import load_demo_data

    return load_demo_data()


@pytest.fixture(scope="module")
def builder() -> PromptBuilder:
    return PromptBuilder.from_model(DEMO)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_engine():
    from serving.engine import EngineConfig, start_vllm_engine

    # per-request seeds crash the CPU build when a prompt is prefilled in chunks
    engine = await start_vllm_engine(EngineConfig(model=str(DEMO), enable_chunked_prefill=False))
    yield engine
    engine.shutdown()


@pytest.mark.asyncio(loop_scope="session")
async def test_every_task_runs_and_parses(demo_engine, builder, data):
    decoder = Decoder.from_model(DEMO)
    registry = default_registry()
    drawer = ExampleDrawer(data, data.held_out, registry, seed=11)
    known = KnownLabels(frozenset(data.labels), frozenset(data.gene_sets))
    for spec in registry:
        examples = [drawer.draw(spec.name, template=0) for _ in range(EXAMPLES_PER_TASK)]
        results = await run_examples(demo_engine, builder, decoder, examples)
        assert all(r.kind == spec.output.value for r in results), spec.name
        valid = sum(is_valid(ex, r, known) for ex, r in zip(examples, results, strict=True))
        assert valid / len(examples) >= VALIDITY_FLOOR, (
            spec.name,
            [r.model_dump() for r in results],
        )


@pytest.mark.asyncio(loop_scope="session")
async def test_held_out_cell_type_accuracy(demo_engine, builder, data):
    decoder = Decoder.from_model(DEMO)
    drawer = ExampleDrawer(data, data.held_out, default_registry(), seed=0)
    examples = drawer.cell_type_examples(n_genes=EVAL_GENES, template=0)
    results: list[TaskResult] = await run_examples(demo_engine, builder, decoder, examples)
    accuracy = sum(r.label == ex.labels[0] for ex, r in zip(examples, results, strict=True)) / 140
    measured = json.loads((DEMO / "metrics.json").read_text())["cell_type_accuracy"]
    assert accuracy >= ACCURACY_FLOOR > MAJORITY + 0.3
    assert abs(accuracy - measured) <= 0.05  # the model card's number is reproduced
    assert measured >= CARD_BAR


#: sha256 of the token ids of the 140 held-out cell type prompts of the committed checkpoint
#: (JSON list of lists). The engine's accuracy moves with bf16 kernels (two near-tied cells
#: flipped between machines); this pins that the prompts themselves have not moved. The
#: tokenizer is trained with each checkpoint (on its training examples, so on its number of
#: steps), so a retrained one moves the ids: the same prompts gave ae27b0d0... with the
#: 2,000-step recipe's tokenizer and 4f71d450... with the 1,600-step one's.
HELD_OUT_PROMPTS_SHA256 = "3b678d10e018f9cbaa564901a8a4f80a2a1cedf5357479ffa741490817b173d0"


def test_the_held_out_prompts_are_the_evaluated_ones(builder, data):
    import hashlib

    from models.training.evaluate import EVAL_SEED

    drawer = ExampleDrawer(data, data.held_out, default_registry(), seed=EVAL_SEED)
    examples = drawer.cell_type_examples(n_genes=EVAL_GENES, template=0)
    ids = [list(map(int, builder.build(e.task, e.payload, e.template).token_ids)) for e in examples]
    assert len(ids) == 140
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == HELD_OUT_PROMPTS_SHA256
