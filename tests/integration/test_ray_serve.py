"""`c2s serve` as the README starts it: Ray Serve deployments on a local cluster, queried
over loopback with the official openai client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from serving.testing.process_group import stop_process_group
from serving.testing.ray_head import LOOPBACK_CLIENT_ENV, RayHead, free_port_range
from tests.integration.conftest import free_port
from tests.task_inputs import CELL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

#: served under an explicit name: the random tiny checkpoint's directory name is a temp dir
BASE = "tiny-neox-test"
STARTUP_LIMIT_S = 420


@pytest.fixture(scope="module", params=["gateway", "engine"])
def ingress(request) -> str:
    """Each topology (`AppConfig.ingress`): every test of this module runs against both."""
    return request.param


@pytest.fixture(scope="module")
def ray_head(ingress, tmp_path_factory):
    """A Ray head of this module's own on loopback, so the bulk job can join it; one per
    topology, since Serve keeps its proxy's port for the cluster's life."""
    logs = tmp_path_factory.mktemp("ray-head")
    with RayHead(f"test-{os.getpid()}", free_port_range(80), 8, logs / "ray.log") as head:
        yield head


@pytest.fixture(scope="module")
def ray_gateway(ingress, tiny_checkpoint, tmp_path_factory, ray_head):
    port = free_port()
    log = tmp_path_factory.mktemp("c2s-serve") / "serve.log"
    env = {**os.environ, "C2S_API_KEY": "test-key", "RAY_USAGE_STATS_ENABLED": "0"}
    env.update(LOOPBACK_CLIENT_ENV)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.cli",
                "serve",
                "--model",
                str(tiny_checkpoint),
                "--port",
                str(port),
                "--embeddings",
                "--served-model-name",
                BASE,
                "--address",
                ray_head.address,
                "--ingress",
                ingress,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"c2s serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail(f"c2s serve did not become healthy:\n{log.read_text()[-4000:]}")
    yield url
    stop_process_group(proc)


@pytest.fixture
def client(ray_gateway):
    return openai.AsyncOpenAI(base_url=f"{ray_gateway}/v1", api_key="test-key", max_retries=0)


async def test_the_key_is_required_but_not_for_health(ray_gateway):
    async with httpx.AsyncClient(base_url=ray_gateway) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        refused = await http.get("/v1/models")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == 401
    bad = openai.AsyncOpenAI(base_url=f"{ray_gateway}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await bad.models.list()


async def test_completions_and_chat_through_the_deployments(client):
    ids = [m.id async for m in client.models.list()]
    assert len(ids) == 13
    done = await client.completions.create(
        model=f"{BASE}/cell_type_prediction",
        prompt="",
        max_tokens=5,
        extra_body={"inputs": {"cell": CELL}},
    )
    assert done.choices[0].result["kind"] == "label"
    assert done.usage.completion_tokens >= 1
    stream = await client.chat.completions.create(
        model=f"{BASE}/cell_type_prediction",
        messages=[{"role": "user", "content": CELL}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == done.choices[0].text
    assert chunks[-1].usage.prompt_tokens == done.usage.prompt_tokens


async def test_core_errors_cross_the_replicas_with_their_status(client, ray_gateway):
    with pytest.raises(openai.BadRequestError) as long:
        await client.completions.create(model=BASE, prompt=[5] * 9000, max_tokens=1)
    assert long.value.body["param"] == "input_tokens"
    assert "9000" in long.value.body["message"]
    async with httpx.AsyncClient(
        base_url=ray_gateway, headers={"Authorization": "Bearer test-key"}
    ) as http:
        bad_item = await http.post(
            "/v1/tasks/cell_type_prediction", json={"inputs": [{"cell": CELL}, {"cel": CELL}]}
        )
        assert bad_item.status_code == 400
        assert bad_item.json()["error"]["param"] == "inputs[1]"
        unknown = await http.post("/v1/tasks/nope", json={"inputs": [{}]})
        assert unknown.status_code == 404


async def test_a_batch_fans_out_in_order_and_matches_single_requests(client, ray_gateway):
    cells = [
        " ".join(CELL.split()[i % 8 :] + CELL.split()[: i % 8]) + f" GENE{i}" for i in range(150)
    ]
    async with httpx.AsyncClient(
        base_url=ray_gateway, headers={"Authorization": "Bearer test-key"}, timeout=120
    ) as http:
        batch = await http.post(
            "/v1/tasks/cell_type_prediction",
            json={"inputs": [{"cell": c} for c in cells], "max_tokens": 4},
        )
    assert batch.status_code == 200, batch.text
    data = batch.json()["data"]
    assert [d["index"] for d in data] == list(range(150))
    sample = [0, 1, 64, 65, 149]
    singles = await asyncio.gather(
        *(
            client.completions.create(
                model=f"{BASE}/cell_type_prediction",
                prompt="",
                max_tokens=4,
                extra_body={"inputs": {"cell": cells[i]}},
            )
            for i in sample
        )
    )
    for i, single in zip(sample, singles, strict=True):
        assert data[i]["text"] == single.choices[0].text
        assert data[i]["prompt_tokens"] == single.usage.prompt_tokens


async def test_label_sets_and_embeddings_through_the_deployments(client, ray_gateway):
    labels = ["B cell", "T cell", "CD14+ Monocyte"]
    scored = await client.completions.create(
        model=f"{BASE}/cell_type_prediction",
        prompt=CELL,
        extra_body={"labels": labels, "label_mode": "scored", "top_k_labels": 3},
    )
    scores = scored.choices[0].result["label_scores"]
    assert sorted(s["label"] for s in scores) == sorted(labels)
    assert abs(sum(s["probability"] for s in scores) - 1) < 1e-9
    constrained = await client.completions.create(
        model=f"{BASE}/cell_type_prediction",
        prompt=CELL,
        extra_body={"labels": labels, "label_mode": "constrained"},
    )
    assert constrained.choices[0].result["label"] in labels
    embedded = await client.embeddings.create(model=BASE, input=[CELL, "CD3D CD3E IL7R"])
    assert len(embedded.data) == 2 and len(embedded.data[0].embedding) == 128
    again = await client.embeddings.create(model=BASE, input=CELL)
    assert again.data[0].embedding == embedded.data[0].embedding


#: the bulk job's runner in ray mode (what `c2s annotate --ray-address` runs per batch)
BULK_RAY_RUNNER = """
import asyncio, dataclasses, json, sys
from serving.bulk.backends import open_runner
from serving.bulk.config import ExecutionConfig

async def main():
    inputs = json.loads(sys.argv[2])
    execution = ExecutionConfig(mode="ray", ray_address=sys.argv[1], request_cells=4)
    async with open_runner(execution) as runner:
        answers = await runner.run("cell_type_prediction", inputs, [0] * len(inputs))
    print(json.dumps([dataclasses.asdict(a) for a in answers]))

asyncio.run(main())
"""


async def test_every_path_gives_the_same_answers(
    client, ray_gateway, ray_head, engine, tiny_checkpoint
):
    """In-process stages, single requests over Ray (built and parsed in the gateway), a
    batch over Ray (chunks on the replicas) and the bulk job's ray mode answer the same
    cells alike: text, token counts and typed result."""
    from serving.core.pipeline import LocalPipeline, fan_out, generation
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage, DecodeStage

    inputs = [{"cell": " ".join(CELL.split()[i:] + CELL.split()[:i])} for i in range(6)]
    stages = LocalPipeline(
        BuildStage.from_model(tiny_checkpoint), engine, DecodeStage.from_model(tiny_checkpoint)
    )
    jobs = [PromptRequest("cell_type_prediction", i) for i in inputs]
    local = await fan_out(stages, jobs, generation(stages, lambda p: p.params), chunk_size=4)
    expected = [
        (
            i.completion.text,
            i.prompt.prompt_tokens,
            i.completion.completion_tokens,
            i.answers[0].result,
        )
        for i in local
    ]
    singles = await asyncio.gather(
        *(
            client.completions.create(
                model=f"{BASE}/cell_type_prediction", prompt="", extra_body={"inputs": i}
            )
            for i in inputs
        )
    )
    assert [
        (s.choices[0].text, s.usage.prompt_tokens, s.usage.completion_tokens, s.choices[0].result)
        for s in singles
    ] == expected
    async with httpx.AsyncClient(
        base_url=ray_gateway, headers={"Authorization": "Bearer test-key"}, timeout=120
    ) as http:
        batch = await http.post(
            "/v1/tasks/cell_type_prediction", json={"inputs": inputs, "include_text": True}
        )
    assert batch.status_code == 200, batch.text
    assert [
        (d["text"], d["prompt_tokens"], d["completion_tokens"], d["result"])
        for d in batch.json()["data"]
    ] == expected
    bulk = subprocess.run(
        [sys.executable, "-c", BULK_RAY_RUNNER, ray_head.address, json.dumps(inputs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **LOOPBACK_CLIENT_ENV},
    )
    assert bulk.returncode == 0, bulk.stderr[-3000:]
    rows = json.loads(bulk.stdout.strip().splitlines()[-1])
    assert [
        (r["text"], r["prompt_tokens"], r["output_tokens"], r["result"]) for r in rows
    ] == expected
