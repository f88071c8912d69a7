"""The real vLLM CPU engine behind the adapter, at an 8192-token context."""

from __future__ import annotations

import asyncio

import pytest

from serving.core.errors import InvalidRequest, PromptTooLong
from serving.engine import GenerationParams

pytestmark = pytest.mark.engine

PROMPT = [510, 1563, 273, 253, 5448, 310, 1048, 15, 20, 21, 22]


def test_a_one_token_first_request_is_served(engine_with_first_reply):
    _, first = engine_with_first_reply
    assert first.prompt_tokens == 1
    assert len(first.outputs[0].token_ids) == 4
    assert first.outputs[0].finish_reason == "length"


def test_limits_are_reported(engine):
    limits = engine.limits
    assert limits.max_model_len == 8192
    assert limits.vocab_size == 50304
    assert limits.eos_token_id == 0
    assert limits.device == "cpu"
    assert limits.kv_cache_tokens >= 8192


async def test_greedy_output_is_deterministic(engine):
    params = GenerationParams.greedy(max_tokens=12, ignore_eos=True)
    first = await engine.complete(PROMPT, params)
    again = await engine.complete(PROMPT, params)
    assert len(first.outputs[0].token_ids) == 12
    assert first.outputs[0].token_ids == again.outputs[0].token_ids
    assert first.outputs[0].text == again.outputs[0].text


async def test_stream_deltas_add_up_to_the_completion(engine):
    params = GenerationParams.greedy(max_tokens=10, ignore_eos=True)
    whole = await engine.complete(PROMPT, params)
    ids, text = [], ""
    async for step in engine.generate(PROMPT, params):
        for delta in step.deltas:
            ids.extend(delta.token_ids)
            text += delta.text
    assert tuple(ids) == whole.outputs[0].token_ids
    assert text == whole.outputs[0].text
    assert step.finished and step.deltas[-1].finish_reason == "length"


async def test_a_prompt_of_8000_tokens_is_served(engine):
    prompt = [1000 + (i % 40000) for i in range(8000)]
    done = await engine.complete(prompt, GenerationParams.greedy(max_tokens=3, ignore_eos=True))
    assert done.prompt_tokens == 8000
    assert len(done.outputs[0].token_ids) == 3


async def test_output_is_clamped_to_the_context_left(engine):
    prompt = [1000 + i for i in range(8190)]
    done = await engine.complete(prompt, GenerationParams.greedy(max_tokens=50, ignore_eos=True))
    assert len(done.outputs[0].token_ids) == 2
    assert done.outputs[0].finish_reason == "length"


@pytest.mark.parametrize("length", [8192, 9000])
async def test_an_over_long_prompt_is_rejected_with_its_numbers(engine, length):
    with pytest.raises(PromptTooLong) as err:
        await engine.complete([7] * length, GenerationParams.greedy(max_tokens=1))
    assert err.value.prompt_tokens == length
    assert err.value.max_model_len == 8192
    assert f"{length} tokens" in err.value.message and "8192" in err.value.message
    assert err.value.param == "input_tokens"
    still = await engine.complete(PROMPT, GenerationParams.greedy(max_tokens=2, ignore_eos=True))
    assert len(still.outputs[0].token_ids) == 2
    await engine.health()


async def test_empty_and_out_of_vocabulary_prompts_are_rejected(engine):
    with pytest.raises(InvalidRequest, match="empty"):
        await engine.complete([], GenerationParams())
    with pytest.raises(InvalidRequest, match=r"\[0, 50304\)"):
        await engine.complete([1, 50304], GenerationParams())


async def test_a_cancelled_request_leaves_nothing_running(engine):
    params = GenerationParams(max_tokens=4000, ignore_eos=True)
    task = asyncio.create_task(engine.complete(PROMPT, params))
    while engine.num_unfinished_requests() == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if engine.num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.num_unfinished_requests() == 0


async def test_a_stream_closed_early_is_aborted(engine):
    stream = engine.generate(PROMPT, GenerationParams(max_tokens=4000, ignore_eos=True))
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(200):
        if engine.num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.num_unfinished_requests() == 0


async def test_n_seed_and_logprobs(engine):
    params = GenerationParams(max_tokens=6, n=3, seed=7, logprobs=2, ignore_eos=True)
    first = await engine.complete(PROMPT, params)
    again = await engine.complete(PROMPT, params)
    assert [o.index for o in first.outputs] == [0, 1, 2]
    assert [o.token_ids for o in first.outputs] == [o.token_ids for o in again.outputs]
    steps = first.outputs[0].logprobs
    assert len(steps) == 6
    for step, token in zip(steps, first.outputs[0].token_ids, strict=True):
        assert step.token_id == token
        assert step.logprob <= 0.0
        assert token in step.top and len(step.top) >= 2


async def test_stop_strings_end_the_output(engine):
    free = await engine.complete(PROMPT, GenerationParams.greedy(max_tokens=12, ignore_eos=True))
    text = free.outputs[0].text
    cut = text[len(text) // 2 :].strip()[:3]
    if not cut:
        pytest.skip("random model produced whitespace only")
    stopped = await engine.complete(
        PROMPT, GenerationParams.greedy(max_tokens=12, stop=(cut,), ignore_eos=True)
    )
    assert cut not in stopped.outputs[0].text
    assert stopped.outputs[0].finish_reason == "stop"


async def test_a_seeded_long_prompt_is_served_and_the_engine_survives(engine):
    # On the CPU build a seeded request dies when its prompt is prefilled in chunks, so
    # the adapter prefills whole prompts there (enable_chunked_prefill auto).
    # Several at once, longer than vLLM's default 2048-token step, killed it when chunked.
    prompt = [1000 + i for i in range(7000)]
    params = GenerationParams(max_tokens=4, seed=3, temperature=1.0, ignore_eos=True)
    first, _, _ = await asyncio.gather(
        engine.complete(prompt, params),
        engine.complete([5] * 3000, params),
        engine.complete(prompt[:5000], params.model_copy(update={"seed": 5})),
    )
    again = await engine.complete(prompt, params)
    assert first.outputs[0].token_ids == again.outputs[0].token_ids
    await engine.health()
    scheduler = engine._llm.vllm_config.scheduler_config
    assert not scheduler.enable_chunked_prefill and scheduler.max_num_batched_tokens >= 8192


async def test_forced_tokens_are_generated_with_their_raw_logprobs(engine):
    prompt = list(range(100, 140))
    free = await engine.complete(prompt, GenerationParams.greedy(max_tokens=4, logprobs=0))
    forced_ids = (7, 8, 9, 0)
    forced = await engine.complete(
        prompt,
        GenerationParams.greedy(
            max_tokens=4, forced_token_ids=forced_ids, logprobs=0, ignore_eos=True
        ),
    )
    assert forced.outputs[0].token_ids == forced_ids != free.outputs[0].token_ids
    # raw log-probabilities (before the mask): finite and below 0, not the mask's 0
    assert all(-30 < step.logprob < 0 for step in forced.outputs[0].logprobs)
    # the first step sees only the prompt, as the free request's first step did
    top_first = await engine.complete(
        prompt, GenerationParams.greedy(max_tokens=1, logprob_token_ids=(7,))
    )
    first = forced.outputs[0].logprobs[0].logprob
    assert first == pytest.approx(top_first.outputs[0].logprobs[0].top[7], abs=1e-3)
    with pytest.raises(InvalidRequest, match="forced_token_ids"):
        await engine.complete(
            prompt, GenerationParams.greedy(max_tokens=1, forced_token_ids=(10**7,))
        )
