"""Gateway contract of label sets and /v1/embeddings, over a fake engine and embedder."""

from __future__ import annotations

import base64
import math

import httpx
import numpy as np
import pytest

from serving.core.pipeline import LocalPipeline
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.atlas.label_data import PBMC_LABELS
from tests.task_inputs import CELL, CELLS

MODEL = "c2s-demo-pythia"
LABELS = ["B cell", "T cell", "NK cell"]


async def test_batch_route_scored_mode_returns_top_k_probabilities(fake_client):
    body = {
        "inputs": [{"cell": CELL}, {"cell": "CD3D CD3E IL7R"}],
        "labels": list(PBMC_LABELS),
        "label_mode": "scored",
        "top_k_labels": 3,
    }
    response = await fake_client.post("/v1/tasks/cell_type_prediction", json=body)
    assert response.status_code == 200, response.text
    for item in response.json()["data"]:
        result = item["result"]
        scores = result["label_scores"]
        assert len(scores) == 3 and result["in_label_set"] is True
        assert result["label"] == scores[0]["label"] and item["text"] == f"{result['label']}."
        assert all(0.0 <= s["probability"] <= 1.0 for s in scores)
        assert [s["logprob"] for s in scores] == sorted(
            (s["logprob"] for s in scores), reverse=True
        )


async def test_free_answers_outside_the_set_are_flagged_not_mapped(fake_client):
    body = {"inputs": [{"cell": CELL}], "labels": ["T cell"]}
    response = await fake_client.post("/v1/tasks/cell_type_prediction", json=body)
    assert response.json()["data"][0]["result"] == {
        "kind": "label",
        "label": "B cell",
        "in_label_set": False,
    }


async def test_completions_and_chat_take_label_sets_in_the_extra_body(fake_client):
    response = await fake_client.post(
        "/v1/completions",
        json={
            "model": f"{MODEL}/cell_type_prediction",
            "prompt": CELL,
            "labels": LABELS,
            "label_mode": "scored",
            "top_k_labels": 3,
        },
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert math.fsum(s["probability"] for s in choice["result"]["label_scores"]) == pytest.approx(1)
    assert choice["finish_reason"] == "stop" and choice["text"] == f"{choice['result']['label']}."
    chat = await fake_client.post(
        "/v1/chat/completions",
        json={
            "model": f"{MODEL}/multi_cell_type_prediction",
            "messages": [{"role": "user", "content": "\n".join(CELLS)}],
            "labels": LABELS,
            "label_mode": "constrained",
        },
    )
    assert chat.status_code == 200, chat.text
    # the fake engine ignores the constraint: its answer is parsed and checked, not mapped
    assert "in_label_set" in chat.json()["choices"][0]["result"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"label_mode": "scored"}, "labels"),
        ({"labels": ["a", "a"]}, "labels"),
        ({"labels": LABELS, "label_mode": "scored", "n": 2, "temperature": 1}, "label_mode"),
        ({"labels": LABELS, "stream": True}, "labels"),
        ({"labels": LABELS, "label_mode": "maybe"}, "label_mode"),
    ],
)
async def test_invalid_label_requests_are_400(fake_client, body, param):
    request = {"model": f"{MODEL}/cell_type_prediction", "prompt": CELL, **body}
    response = await fake_client.post("/v1/completions", json=request)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_label_sets_need_a_label_task(fake_client):
    response = await fake_client.post(
        "/v1/tasks/cell_generation", json={"inputs": [{"n_genes": 5}], "labels": LABELS}
    )
    assert response.status_code == 400
    assert "does not answer with labels" in response.json()["error"]["message"]


async def test_embeddings_float_and_base64_agree(fake_client):
    cells = [CELL, {"genes": ["CD3D", "CD3E", "IL7R"], "values": [3.0, 2.0, 1.0]}]
    floats = await fake_client.post(
        "/v1/embeddings", json={"model": MODEL, "input": cells, "n_genes": 5}
    )
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert [d["index"] for d in body["data"]] == [0, 1] and body["object"] == "list"
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    packed = await fake_client.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": cells, "n_genes": 5, "encoding_format": "base64"},
    )
    for plain, encoded in zip(body["data"], packed.json()["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(encoded["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.asarray(plain["embedding"], dtype=np.float32))


async def test_embeddings_of_a_sentence_and_its_expression_match(fake_client):
    sentence = await fake_client.post(
        "/v1/embeddings", json={"model": MODEL, "input": "CD3D CD3E IL7R"}
    )
    expression = await fake_client.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": [{"genes": ["IL7R", "CD3D", "CD3E"], "values": [1, 3, 2]}]},
    )
    assert sentence.json()["data"][0]["embedding"] == expression.json()["data"][0]["embedding"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "other", "input": CELL}, 404, "model"),
        ({"model": MODEL, "input": [[1, 2, 3]]}, 400, "input"),
        ({"model": MODEL, "input": CELL, "dimensions": 3}, 400, "dimensions"),
        ({"model": MODEL, "input": CELL, "n_genes": 0}, 400, "n_genes"),
        ({"model": MODEL, "input": []}, 400, "input"),
    ],
)
async def test_invalid_embedding_requests(fake_client, body, status, param):
    response = await fake_client.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


async def test_embeddings_without_an_embedder_are_refused(fake_stages):
    stages = LocalPipeline(fake_stages.builder, fake_stages.engine, fake_stages.decoder)
    app = create_app(GatewayConfig(), stages, default_registry())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        response = await client.post("/v1/embeddings", json={"model": MODEL, "input": CELL})
    assert response.status_code == 400
    assert "no embedding engine" in response.json()["error"]["message"]
