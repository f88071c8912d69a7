"""Label sets and embeddings on the real vLLM CPU engine (tiny random checkpoint).

The weights are random, so answers are meaningless; what is checked is the machinery:
forced-answer scores equal a brute-force Hugging Face computation, probabilities are a
distribution, constrained answers stay in the set, embeddings are the masked mean of the
last hidden state, and the gateway and ``c2s embed`` give a cell the same vector.
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from serving.bulk import ExecutionConfig
from serving.bulk.embed import EmbedConfig, embed_file
from serving.core.embeddings import LocalEmbeddingPipeline
from serving.core.label_sets import LabelScorer, LabelSet, LabelShape
from serving.core.requests import PromptRequest
from serving.core.tasks import default_registry
from serving.engine import EngineConfig
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.atlas.label_data import PBMC_LABELS, answer_with_label_set
from tests.jobs.conftest import small_adata
from tests.task_inputs import CELL, CELLS
from tokenizer_ext import cell_sentences

pytestmark = pytest.mark.engine

REGISTRY = default_registry()
#: bf16 engine vs fp32 reference, summed over an answer's ~10 tokens
LOGPROB_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def hf_model(tiny_checkpoint):
    import torch
    from transformers import GPTNeoXForCausalLM

    return GPTNeoXForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()


def hf_logprob(model, prompt_ids, answer_ids) -> float:
    import torch

    ids = torch.tensor([[*prompt_ids, *answer_ids]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    start = len(prompt_ids) - 1
    return math.fsum(float(logprobs[start + i, t]) for i, t in enumerate(answer_ids))


async def test_forced_answer_scores_equal_brute_force_log_probabilities(tiny_stages, hf_model):
    label_set = LabelSet(labels=PBMC_LABELS, mode="scored", top_k=len(PBMC_LABELS))
    scorer = await LabelScorer.for_stages(tiny_stages, label_set)
    (prompt,) = await tiny_stages.build([PromptRequest("cell_type_prediction", {"cell": CELL})])
    shape = LabelShape.of(REGISTRY.get("cell_type_prediction"))
    (ranked,) = (await scorer.score(shape, prompt.token_ids)).ranked
    assert sorted(r.label for r in ranked) == sorted(PBMC_LABELS)
    assert math.fsum(r.probability for r in ranked) == pytest.approx(1.0)
    assert all(0.0 <= r.probability <= 1.0 for r in ranked)
    encode = tiny_stages.builder.builder.encoder.encode
    for r in ranked:
        answer = [*encode(f"{r.label}."), 0]  # C2S trains on the answer text and EOS
        expected = hf_logprob(hf_model, prompt.token_ids, answer)
        assert r.logprob == pytest.approx(expected, abs=LOGPROB_TOLERANCE), r.label


@pytest.mark.parametrize("task", ["cell_type_prediction", "multi_cell_type_prediction"])
async def test_constrained_answers_are_always_in_the_set(tiny_stages, task):
    sentences = [CELL, *CELLS, "NKG7 GNLY GZMB PRF1 CTSW", "PPBP PF4 GNG11 SDPR"]
    inputs = (
        [{"cell": s} for s in sentences]
        if task == "cell_type_prediction"
        else [{"cells": sentences[i : i + 3], "n_genes": 5} for i in range(3)]
    )
    items = await answer_with_label_set(
        tiny_stages,
        [PromptRequest(task, payload) for payload in inputs],
        lambda prompt: prompt.params,
        label_set=LabelSet(labels=PBMC_LABELS, mode="constrained"),
        registry=REGISTRY,
        chunk_size=4,
    )
    for item in items:
        result = item.answers[0].result
        labels = [result["label"]] if "label" in result else result["labels"]
        assert labels and all(label in PBMC_LABELS for label in labels), item.completion.text
        assert item.completion.outputs[0].finish_reason == "stop"


async def test_embeddings_are_the_masked_mean_of_the_last_hidden_state(
    tiny_stages, tiny_checkpoint
):
    import torch
    from transformers import GPTNeoXModel

    model = GPTNeoXModel.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    prompts = await tiny_stages.build(
        [PromptRequest("cell_type_prediction", {"cell": c}) for c in (CELL, *CELLS)]
    )
    embedded = await tiny_stages.embed(prompts)
    for prompt, embedding in zip(prompts, embedded, strict=True):
        with torch.no_grad():
            hidden = model(torch.tensor([prompt.token_ids])).last_hidden_state[0]
        expected = hidden.mean(dim=0).numpy()
        cosine = embedding.values @ expected / np.linalg.norm(embedding.values)
        assert cosine / np.linalg.norm(expected) > 0.9999
        assert embedding.prompt_tokens == prompt.prompt_tokens


async def test_a_cell_embeds_identically_via_gateway_and_bulk_command(
    tiny_stages, tiny_checkpoint, tmp_path
):
    import openai

    n_genes = 8
    adata = small_adata(12)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    execution = ExecutionConfig(mode="local", engine=EngineConfig(model=str(tiny_checkpoint)))
    config = EmbedConfig(
        input=path, out=tmp_path / "out.h5ad", n_genes=n_genes, execution=execution
    )
    bulk = await embed_file(
        config, LocalEmbeddingPipeline(tiny_stages.builder, tiny_stages.embedder)
    )
    app = create_app(GatewayConfig(), tiny_stages, REGISTRY)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw/v1")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="unused", http_client=http)
    response = await client.embeddings.create(
        model="c2s-demo-pythia",
        input=cell_sentences(adata, top_k=n_genes),
        extra_body={"n_genes": n_genes},
    )
    served = np.asarray([d.embedding for d in response.data], dtype=np.float32)
    assert served.shape == bulk.embeddings.shape
    assert np.array_equal(served, bulk.embeddings)
    assert response.usage.prompt_tokens == bulk.summary["prompt_tokens"]
    await http.aclose()


async def test_scored_completion_through_the_openai_client(tiny_stages):
    import openai

    app = create_app(GatewayConfig(), tiny_stages, REGISTRY)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw/v1")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="unused", http_client=http)
    completion = await client.completions.create(
        model="c2s-demo-pythia/cell_type_prediction",
        prompt=CELL,
        extra_body={"labels": list(PBMC_LABELS), "label_mode": "scored", "top_k_labels": 3},
    )
    result = completion.choices[0].model_extra["result"]
    assert result["label"] in PBMC_LABELS and len(result["label_scores"]) == 3
    assert completion.choices[0].text == f"{result['label']}."
    await http.aclose()


async def test_many_long_prompts_embed_at_once(tiny_stages):
    # more tokens than one engine step holds: each prompt must still be pooled whole
    rng = np.random.default_rng(0)
    prompts = [[int(t) for t in rng.integers(100, 20000, size=900)] for _ in range(12)]
    import asyncio

    embedded = await asyncio.gather(*(tiny_stages.embedder.embed(p) for p in prompts))
    assert all(e.prompt_tokens == 900 and np.isfinite(e.values).all() for e in embedded)
    await tiny_stages.embedder.health()
