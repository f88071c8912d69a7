"""The official openai client against the gateway, over the real vLLM CPU engine."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tests.task_inputs import CELL, TASK_INPUTS

pytestmark = pytest.mark.engine

BASE = "c2s-demo-pythia"


async def test_models_list(openai_client):
    ids = [m.id async for m in openai_client.models.list()]
    assert ids[0] == BASE and len(ids) == 13
    assert f"{BASE}/genes_to_gene_set" in ids


async def test_raw_completion_with_seed_n_and_usage(openai_client, pythia_tokenizer_dir):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(pythia_tokenizer_dir / "tokenizer.json"))
    kwargs = dict(model=BASE, prompt="CD3D CD3E", max_tokens=5, n=2, temperature=1.0, seed=11)
    first = await openai_client.completions.create(**kwargs)
    again = await openai_client.completions.create(**kwargs)
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert [c.index for c in first.choices] == [0, 1]
    assert first.usage.prompt_tokens == len(tokenizer.encode("CD3D CD3E").ids)
    assert first.usage.completion_tokens == sum(
        len(tokenizer.encode(c.text).ids) if c.finish_reason == "stop" else 5 for c in first.choices
    )


async def test_greedy_text_matches_between_stream_and_not(openai_client):
    kwargs = dict(model=f"{BASE}/cell_type_prediction", max_tokens=8)
    body = {"inputs": {"cell": CELL}}
    whole = await openai_client.completions.create(**kwargs, prompt="", extra_body=body)
    stream = await openai_client.completions.create(
        **kwargs, prompt="", extra_body=body, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    final = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.result == whole.choices[0].result
    assert whole.choices[0].result["kind"] == "label"


@pytest.mark.parametrize("task", sorted(TASK_INPUTS))
@pytest.mark.parametrize("route", ["completions", "chat"])
@pytest.mark.parametrize("stream", [False, True])
async def test_every_task_runs_and_parses(openai_client, task, route, stream):
    model = f"{BASE}/{task}"
    common = dict(model=model, max_tokens=12, seed=0, stream=stream)
    if route == "completions":
        response = await openai_client.completions.create(
            prompt="", extra_body={"inputs": TASK_INPUTS[task]}, **common
        )
    else:
        response = await openai_client.chat.completions.create(
            messages=[{"role": "user", "content": json.dumps(TASK_INPUTS[task])}], **common
        )
    if stream:
        chunks = [c async for c in response]
        finals = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
        result = finals[-1].result
    else:
        result = response.choices[0].result
        assert response.usage.prompt_tokens > 10
    assert isinstance(result, dict) and result["kind"]


async def test_stop_and_logprobs(openai_client):
    done = await openai_client.completions.create(
        model=BASE, prompt="CD3D CD3E CD2", max_tokens=6, temperature=0, logprobs=2
    )
    lp = done.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6
    assert "".join(lp.tokens) == done.choices[0].text
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(len(top) >= 1 for top in lp.top_logprobs)
    cut = done.choices[0].text[3:6].strip() or done.choices[0].text.strip()[:2]
    stopped = await openai_client.completions.create(
        model=BASE, prompt="CD3D CD3E CD2", max_tokens=6, temperature=0, stop=[cut]
    )
    assert cut not in stopped.choices[0].text
    assert stopped.choices[0].finish_reason == "stop"
    chat = await openai_client.chat.completions.create(
        model=f"{BASE}/cell_type_prediction",
        messages=[{"role": "user", "content": CELL}],
        max_tokens=4,
        logprobs=True,
        top_logprobs=2,
    )
    entries = chat.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == chat.choices[0].message.content
    assert all(len(e.top_logprobs) >= 1 for e in entries)


async def test_errors_arrive_as_openai_exceptions(openai_client):
    with pytest.raises(openai.NotFoundError) as missing:
        await openai_client.completions.create(model="nope", prompt="x")
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as long:
        await openai_client.completions.create(model=BASE, prompt=[5] * 9000, max_tokens=1)
    assert long.value.body["param"] == "input_tokens"
    assert "9000" in long.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        await openai_client.chat.completions.create(
            model=f"{BASE}/nope", messages=[{"role": "user", "content": CELL}]
        )


async def _wait_idle(engine, seconds: float = 5.0) -> int:
    for _ in range(int(seconds / 0.02)):
        if engine.num_unfinished_requests() == 0:
            return 0
        await asyncio.sleep(0.02)
    return engine.num_unfinished_requests()


async def test_client_disconnect_aborts_the_engine_request(live_gateway, engine):
    body = {"model": BASE, "prompt": "CD3D", "max_tokens": 4000, "stream": True}
    async with httpx.AsyncClient(base_url=live_gateway) as client:
        async with client.stream("POST", "/v1/completions", json=body) as r:
            async for _ in r.aiter_lines():
                break
        assert await _wait_idle(engine) == 0
        body["stream"] = False
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/completions", json=body, timeout=0.5)
        assert await _wait_idle(engine) == 0


async def test_batch_endpoint_equals_direct_engine_calls(live_gateway, engine, tiny_checkpoint):
    from serving.core.prompt_builder import PromptBuilder
    from serving.engine import GenerationParams

    cells = [" ".join(CELL.split()[i:] + CELL.split()[:i]) for i in range(8)]
    async with httpx.AsyncClient(base_url=live_gateway, timeout=60) as client:
        r = await client.post(
            "/v1/tasks/cell_type_prediction",
            json={"inputs": [{"cell": c} for c in cells], "max_tokens": 6},
        )
    assert r.status_code == 200, r.text
    builder = PromptBuilder.from_model(tiny_checkpoint)
    for cell, item in zip(cells, r.json()["data"], strict=True):
        built = builder.build("cell_type_prediction", {"cell": cell})
        direct = await engine.complete(built.token_ids, GenerationParams.greedy(max_tokens=6))
        assert item["text"] == direct.text
        assert item["prompt_tokens"] == len(built.token_ids)
