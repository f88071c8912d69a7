"""`serving.core.pipeline.fan_out`: chunks in order, and an invalid item costs no engine work
when every chunk is built first (a request), while a bulk runner's chunks go on as built."""

from __future__ import annotations

import pytest

from serving.core.errors import InvalidRequest
from serving.core.pipeline import fan_out
from serving.core.requests import PreparedPrompt, PromptRequest


class CountingPipeline:
    """Builds a job whose raw prompt is its index; ``bad`` indices fail to build."""

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.bad = bad
        self.built_chunks: list[tuple[int, int]] = []

    async def build(self, jobs, offset: int = 0) -> list[PreparedPrompt]:
        self.built_chunks.append((offset, len(jobs)))
        if any(offset + i in self.bad for i in range(len(jobs))):
            raise InvalidRequest(f"bad item in chunk at {offset}")
        return [PreparedPrompt((j.raw_prompt[0],), params=None) for j in jobs]  # type: ignore[arg-type]


def jobs(n: int) -> list[PromptRequest]:
    return [PromptRequest(raw_prompt=(i,)) for i in range(n)]


async def test_results_come_back_in_input_order_over_chunks():
    answered: list[int] = []

    async def answer(chunk, prompts):
        answered.append(len(chunk))
        return [p.token_ids[0] * 10 for p in prompts]

    stages = CountingPipeline()
    out = await fan_out(stages, jobs(7), answer, chunk_size=3)
    assert out == [i * 10 for i in range(7)]
    assert sorted(stages.built_chunks) == [(0, 3), (3, 3), (6, 1)]
    assert sorted(answered) == [1, 3, 3]


@pytest.mark.parametrize("build_first, answered_chunks", [(True, 0), (False, 1)])
async def test_an_invalid_item_stops_engine_work_only_when_building_first(
    build_first, answered_chunks
):
    answered = []

    async def answer(chunk, prompts):
        answered.append(len(chunk))
        return list(prompts)

    with pytest.raises(InvalidRequest):
        await fan_out(
            CountingPipeline(bad=frozenset({4})),
            jobs(6),
            answer,
            chunk_size=3,
            build_first=build_first,
        )
    assert len(answered) == answered_chunks
