"""The gateway's HTTP contract, over the real stages and a fake engine."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.task_inputs import CELL

BASE = "c2s-demo-pythia"


def assert_envelope(response, status: int, param: str | None = "any") -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    assert error["message"]
    if param != "any":
        assert error["param"] == param
    return error


async def test_models_lists_the_base_and_every_task(make_client):
    client, _ = make_client()
    data = (await client.get("/v1/models")).json()["data"]
    ids = [m["id"] for m in data]
    assert ids[0] == BASE
    assert f"{BASE}/cell_type_prediction" in ids
    assert len(ids) == 13
    assert all(m["max_model_len"] == 8192 for m in data)


async def test_raw_prompt_passes_through(make_client):
    client, _ = make_client()
    r = await client.post(
        "/v1/completions", json={"model": BASE, "prompt": "Hello", "max_tokens": 2}
    )
    body = r.json()
    assert r.status_code == 200
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == " B cell"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["result"] is None
    assert body["usage"]["prompt_tokens"] == 1


@pytest.mark.parametrize("selector", ["model", "field"])
async def test_a_task_is_chosen_by_model_name_or_task_field(make_client, selector):
    client, _ = make_client()
    body = {"model": BASE, "inputs": {"cell": CELL}}
    if selector == "model":
        body["model"] = f"{BASE}/cell_type_prediction"
    else:
        body["task"] = "cell_type_prediction"
    r = await client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["text"] == " B cell."
    assert choice["result"] == {"kind": "label", "label": "B cell"}


async def test_chat_takes_a_cell_sentence_or_json(make_client):
    client, _ = make_client()
    model = f"{BASE}/cell_type_prediction"
    plain = await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": CELL}]},
    )
    as_json = await client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": json.dumps({"cell": CELL})}],
        },
    )
    for r in (plain, as_json):
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": " B cell."}
        assert choice["result"]["label"] == "B cell"
    assert plain.json()["usage"] == as_json.json()["usage"]


async def test_streaming_sends_deltas_result_usage_and_done(make_client):
    client, _ = make_client()
    body = {
        "model": f"{BASE}/cell_type_prediction",
        "messages": [{"role": "user", "content": CELL}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " B cell."
    finals = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals[-1]["result"] == {"kind": "label", "label": "B cell"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_batch_endpoint_answers_in_order_across_chunks(make_client):
    def reply(prompt_ids):
        return f" type{len(prompt_ids)}."

    client, _ = make_client(reply=reply, batch_chunk_size=3)
    cells = [" ".join(CELL.split()[: k + 1]) for k in range(8)]
    r = await client.post(
        "/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": c} for c in cells]}
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(8))
    lengths = [d["prompt_tokens"] for d in data]
    assert lengths == sorted(lengths) and len(set(lengths)) == 8
    assert [d["result"]["label"] for d in data] == [f"type{n}" for n in lengths]
    assert r.json()["usage"]["prompt_tokens"] == sum(lengths)


async def test_expression_input_is_ranked_into_a_sentence(make_client):
    client, _ = make_client()
    cell = {"genes": ["cd3e", "MS4A1", "CD79A"], "values": [0.5, 3.0, 0.0]}
    by_expression = await client.post(
        "/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": cell}]}
    )
    by_sentence = await client.post(
        "/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": "MS4A1 CD3E"}]}
    )
    assert by_expression.status_code == 200, by_expression.text
    assert (
        by_expression.json()["data"][0]["prompt_tokens"]
        == by_sentence.json()["data"][0]["prompt_tokens"]
    )


# --------------------------------------------------------------------------- errors


async def test_unknown_model_and_task_are_404(make_client):
    client, _ = make_client()
    r = await client.post("/v1/completions", json={"model": "gpt-4", "prompt": "x"})
    assert "does not exist" in assert_envelope(r, 404, "model")["message"]
    r = await client.post("/v1/completions", json={"model": f"{BASE}/nope", "inputs": {}})
    assert "cell_type_prediction" in assert_envelope(r, 404, "task")["message"]
    r = await client.post("/v1/tasks/nope", json={"inputs": [{}]})
    assert_envelope(r, 404, "task")


async def test_validation_errors_are_400_not_422(make_client):
    client, _ = make_client()
    r = await client.post("/v1/completions", json={"model": BASE, "prompt": "x", "max_tokens": -1})
    assert "max_tokens" in assert_envelope(r, 400, "max_tokens")["message"]
    r = await client.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_envelope(r, 400)
    r = await client.post("/v1/completions", json={"model": BASE, "prompt": "x", "bogus": 1})
    assert_envelope(r, 400, "bogus")


async def test_invalid_task_input_names_the_field(make_client):
    client, _ = make_client()
    r = await client.post(
        "/v1/completions", json={"model": f"{BASE}/cell_type_prediction", "inputs": {"cel": CELL}}
    )
    error = assert_envelope(r, 400)
    assert "cel" in error["message"]
    r = await client.post(
        "/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": CELL}, {"cell": ""}]}
    )
    error = assert_envelope(r, 400, "inputs[1]")
    assert error["message"].startswith("inputs[1]")


async def test_an_over_long_prompt_is_400_with_the_numbers(make_client):
    client, _ = make_client()
    r = await client.post("/v1/completions", json={"model": BASE, "prompt": list(range(9000))})
    error = assert_envelope(r, 400, "input_tokens")
    assert "9000" in error["message"] and "8192" in error["message"]


async def test_several_greedy_choices_are_a_400(make_client):
    client, _ = make_client()
    r = await client.post(
        "/v1/completions",
        json={"model": f"{BASE}/cell_type_prediction", "inputs": {"cell": CELL}, "n": 2},
    )
    assert "temperature" in assert_envelope(r, 400)["message"]


async def test_a_body_over_the_limit_is_413(make_client):
    client, _ = make_client(max_body_bytes=4096)
    r = await client.post("/v1/completions", json={"model": BASE, "prompt": "x" * 10_000})
    assert_envelope(r, 413)


async def test_api_key_guards_every_route_but_health(make_client):
    client, _ = make_client(api_key="s3cret")
    assert (await client.get("/health")).status_code == 200
    for path in ("/v1/models", "/metrics"):
        assert_envelope(await client.get(path), 401)
    wrong = await client.get("/v1/models", headers={"Authorization": "Bearer s3cre"})
    assert_envelope(wrong, 401)
    ok = await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


async def test_past_capacity_requests_get_429_with_retry_after(make_client):
    client, _ = make_client(max_inflight_requests=2, step_delay_s=0.05, retry_after_s=3)
    body = {"model": BASE, "prompt": "Hello", "max_tokens": 4}
    responses = await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "3"
    assert_envelope(refused, 429)


async def test_health_is_503_while_the_engine_is_dead(make_client):
    client, engine = make_client()
    assert (await client.get("/health")).json() == {"status": "ok"}
    engine.dead = True
    assert_envelope(await client.get("/health"), 503)
    r = await client.post("/v1/completions", json={"model": BASE, "prompt": "Hi"})
    assert_envelope(r, 503)


async def test_metrics_count_requests_tokens_and_latency_per_task(make_client):
    client, _ = make_client()
    await client.post("/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": CELL}]})
    await client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    text = (await client.get("/metrics")).text
    assert (
        'c2s_requests_total{route="/v1/tasks/{task}",status="200",task="cell_type_prediction"} 1.0'
        in text
    )
    assert 'c2s_requests_total{route="/v1/completions",status="404",task="-"} 1.0' in text
    assert 'c2s_tokens_total{kind="completion",task="cell_type_prediction"} 3.0' in text
    assert "c2s_request_latency_seconds_bucket" in text
    assert "c2s_inflight_requests 0.0" in text


async def test_generated_cells_come_with_reconstructed_expression(make_client, decode_stage):
    from serving.core.stages import DecodeStage
    from tokenizer_ext.inverse import RankExpressionFit

    fit = RankExpressionFit(slope=-1.0, intercept=3.0)
    with_fit = DecodeStage(decode_stage.decoder, decode_stage.encoder, fit)
    client, _ = make_client(reply=lambda ids: " CD3D CD3E CD2.", decoder=with_fit)
    body = {"inputs": [{"cell_type": "T cell", "n_genes": 3}], "reconstruct_expression": True}
    r = await client.post("/v1/tasks/cell_type_generation", json=body)
    assert r.status_code == 200, r.text
    result = r.json()["data"][0]["result"]
    assert result["genes"] == ["CD3D", "CD3E", "CD2"]
    assert result["expression"] == pytest.approx([3.0, 3 - 0.30103, 3 - 0.477121], abs=1e-5)
    plain, _ = make_client(reply=lambda ids: " CD3D CD3E CD2.")
    r = await plain.post("/v1/tasks/cell_type_generation", json=body)
    assert "expression_fit.json" in assert_envelope(r, 400, "reconstruct_expression")["message"]
