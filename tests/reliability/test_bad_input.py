"""Every malformed request gets a 4xx in OpenAI's envelope with a message naming what to
fix, never a 5xx, and the real stack is healthy afterwards."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.reliability.conftest import error_of, server_errors
from tests.reliability.corpus import BadRequest, bad_requests

CORPUS = bad_requests()


def test_the_corpus_is_large_and_covers_every_route():
    assert len(CORPUS) >= 100
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    routes = Counter(
        case.path.split("/")[2] if case.path.startswith("/v1/") else case.path for case in CORPUS
    )
    assert {"completions", "chat", "tasks", "models", "/health"} <= set(routes)
    assert all(400 <= case.status < 500 and case.hint for case in CORPUS)


async def send(base_url: str, case: BadRequest) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await client.request(
            case.method, case.path, content=case.body, headers={"content-type": case.content_type}
        )


@pytest.mark.engine
@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
async def test_a_malformed_request_gets_an_actionable_4xx(case, live_gateway, vocabulary_gateway):
    response = await send(vocabulary_gateway if case.needs_vocabulary else live_gateway, case)
    assert response.status_code == case.status, response.text[:500]
    error = error_of(response)
    assert case.hint.lower() in error["message"].lower(), error


@pytest.mark.engine
async def test_the_stack_is_healthy_and_counted_no_5xx_after_the_corpus(
    live_gateway, vocabulary_gateway
):
    for url in (live_gateway, vocabulary_gateway):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert server_errors((await client.get("/metrics")).text) == 0
            ok = await client.post(
                "/v1/tasks/cell_type_prediction",
                json={"inputs": [{"cell": "CD3D CD3E IL7R"}], "max_tokens": 2},
            )
            assert ok.status_code == 200, ok.text
