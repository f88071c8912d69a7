"""Label sets and embeddings on the demo checkpoint, with pbmc68k's held-out cells.

The split is the demo's own (`models.training.dataset`: 80/20 stratified, seed 0, 140
held-out cells); prompts are the served ones (cell type prediction, template 0, 200 genes).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.training.dataset import ORGANISM
from serving.core.embeddings import LocalEmbeddingPipeline, embedding, embedding_job
from serving.core.label_sets import LabelSet
from serving.core.pipeline import fan_out, generation
from serving.core.requests import PromptRequest
from serving.core.tasks import default_registry
from tests.atlas.label_data import answer_with_label_set

pytestmark = pytest.mark.engine

DEMO = Path(__file__).resolve().parents[2] / "models" / "c2s-demo-pythia"
GENES = 200
#: the majority class (Dendritic) of the held-out cells
MAJORITY = 0.343
KNN_K = 5
#: kNN on 200-gene prompt embeddings; "well above" the majority baseline
KNN_FLOOR = 0.60


@pytest.fixture(scope="module")
def data():
    if not (DEMO / "model.safetensors").is_file():
        pytest.skip(f"the demo checkpoint is not at {DEMO}")
    from models.training.dataset import load_demo_data

    return load_demo_data()


@pytest.fixture(scope="module")
async def demo_stages(data):
    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig, start_vllm_embedder, start_vllm_engine

    config = EngineConfig(model=str(DEMO), block_size=32)
    engine = await start_vllm_engine(config)
    embedder = await start_vllm_embedder(EngineConfig(model=str(DEMO)))
    stages = LocalPipeline(
        BuildStage.from_model(DEMO), engine, DecodeStage.from_model(DEMO), embedder
    )
    yield stages
    engine.shutdown()
    embedder.shutdown()


def held_out_jobs(data) -> list[PromptRequest]:
    return [
        PromptRequest(
            "cell_type_prediction",
            {"cell": data.sentences[i], "n_genes": GENES, "organism": ORGANISM},
        )
        for i in data.held_out
    ]


async def labeled(stages, data, mode: str, top_k: int = 3):
    labels = tuple(sorted(set(data.labels)))
    return await answer_with_label_set(
        stages,
        held_out_jobs(data),
        lambda prompt: prompt.params,
        label_set=LabelSet(labels=labels, mode=mode, top_k=top_k),
        registry=default_registry(),
        chunk_size=32,
    )


def accuracy(items, truth) -> float:
    return float(
        np.mean([i.answers[0].result["label"] == t for i, t in zip(items, truth, strict=True)])
    )


async def test_scored_accuracy_at_least_free_and_scores_are_probabilities(demo_stages, data):
    truth = [data.labels[i] for i in data.held_out]
    answer = generation(demo_stages, lambda p: p.params)
    free = await fan_out(demo_stages, held_out_jobs(data), answer, chunk_size=32)
    free_accuracy = accuracy(free, truth)
    scored = await labeled(demo_stages, data, "scored", top_k=len(set(data.labels)))
    scored_accuracy = accuracy(scored, truth)
    print(f"held-out accuracy: free {free_accuracy:.3f}, scored {scored_accuracy:.3f}")
    assert min(scored_accuracy, free_accuracy) > MAJORITY + 0.3
    # the most likely label and the greedy answer differ only where greedy's first tokens
    # lead away from the likeliest whole label: a few cells either way
    same = [
        s.answers[0].result["label"] == f.answers[0].result["label"]
        for s, f in zip(scored, free, strict=True)
    ]
    assert np.mean(same) >= 0.95
    for item in scored:
        scores = item.answers[0].result["label_scores"]
        assert len(scores) == len(set(data.labels))
        assert math.fsum(s["probability"] for s in scores) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= s["probability"] <= 1.0 for s in scores)


async def test_constrained_answers_are_always_in_the_set(demo_stages, data):
    items = await labeled(demo_stages, data, "constrained")
    results = [item.answers[0].result for item in items]
    assert all(r["in_label_set"] and r["label"] in set(data.labels) for r in results)


async def test_knn_on_embeddings_is_well_above_the_majority_baseline(demo_stages, data):
    from sklearn.neighbors import KNeighborsClassifier

    rows = np.concatenate([data.train, data.held_out])
    jobs = [embedding_job(data.sentences[i], GENES, ORGANISM) for i in rows]
    stages = LocalEmbeddingPipeline(demo_stages.builder, demo_stages.embedder)
    vectors = np.stack(
        [e.values for e in await fan_out(stages, jobs, embedding(stages), chunk_size=64)]
    )
    labels = np.asarray(data.labels)
    n_train = len(data.train)
    knn = KNeighborsClassifier(n_neighbors=KNN_K).fit(vectors[:n_train], labels[data.train])
    accuracy = float(np.mean(knn.predict(vectors[n_train:]) == labels[data.held_out]))
    print(f"kNN (k={KNN_K}) held-out accuracy on embeddings: {accuracy:.3f}")
    assert accuracy >= KNN_FLOOR > MAJORITY
