"""The label scorer against a brute-force sum, over a deterministic fake engine."""

from __future__ import annotations

import math

import pytest

from serving.core.label_scoring import (
    PROMPT_PARAMS,
    answer_logprobs,
    forced_logprob,
    normalise,
    rank_labels,
    score_labels,
)
from serving.engine import Completion, GeneratedSequence, GenerationParams, TokenLogprob
from serving.testing.fake_engine import hashed_logprob

PROMPT = (11, 12, 13, 14, 15, 16)


class RecordingEngine:
    """``complete`` generating ``forced_token_ids`` with `hashed_logprob` log-probabilities;
    records every request's prompt and forced ids."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    async def complete(self, ids, params: GenerationParams) -> Completion:
        ids = tuple(ids)
        self.requests.append((ids, params.forced_token_ids))
        if not params.forced_token_ids:
            assert params == PROMPT_PARAMS
            return Completion("r", len(ids), (GeneratedSequence(0, "", (1,), "length"),))
        assert params.temperature == 0.0 and params.logprobs == 0
        assert params.max_tokens == len(params.forced_token_ids)
        answer = params.forced_token_ids
        steps = tuple(
            TokenLogprob(t, hashed_logprob((*ids, *answer[:d]), t), {})
            for d, t in enumerate(answer)
        )
        return Completion("r", len(ids), (GeneratedSequence(0, "", answer, "length", steps),))


def brute_force(prompt, answer) -> float:
    return math.fsum(
        hashed_logprob((*prompt, *answer[:d]), token) for d, token in enumerate(answer)
    )


ANSWERS = [(5, 6, 0), (5, 7, 0), (5, 6, 8, 0), (9, 0), (10, 11, 12, 13, 0)]


async def test_scores_equal_brute_force_and_the_prompt_goes_first_alone():
    engine = RecordingEngine()
    scores = await answer_logprobs(engine.complete, PROMPT, ANSWERS)
    for answer, score in zip(ANSWERS, scores, strict=True):
        assert score == pytest.approx(brute_force(PROMPT, answer), abs=1e-12)
    assert engine.requests[0] == (PROMPT, ())
    assert engine.requests[1:] == [(PROMPT, a) for a in ANSWERS]


async def test_empty_answers_are_refused():
    with pytest.raises(ValueError, match="at least one token"):
        await answer_logprobs(RecordingEngine().complete, PROMPT, [(1, 0), ()])


def test_a_completion_that_left_the_forced_answer_is_an_error():
    strayed = Completion("r", 6, (GeneratedSequence(0, "", (5, 9), "length", ()),))
    with pytest.raises(RuntimeError, match="forced answer"):
        forced_logprob((5, 6), strayed)


def test_normalise_is_a_distribution_and_keeps_order():
    probabilities = normalise([-1.0, -2.0, -400.0, -1.0])
    assert math.fsum(probabilities) == pytest.approx(1.0)
    assert probabilities[0] == probabilities[3] > probabilities[1] > probabilities[2] >= 0.0
    assert normalise([-math.inf, -math.inf]) == [0.5, 0.5]


def test_rank_labels_best_first_ties_in_set_order_top_k():
    ranked = rank_labels(["a", "b", "c", "d"], [-3.0, -1.0, -3.0, -2.0], top_k=3)
    assert [r.label for r in ranked] == ["b", "d", "a"]
    assert ranked[0].as_dict()["probability"] == pytest.approx(ranked[0].probability)
    full = rank_labels(["a", "b", "c", "d"], [-3.0, -1.0, -3.0, -2.0])
    assert math.fsum(r.probability for r in full) == pytest.approx(1.0)


async def test_score_labels_pairs_labels_with_answers():
    engine = RecordingEngine()
    ranked = await score_labels(engine.complete, PROMPT, ["x", "y"], [(5, 0), (6, 0)])
    best = max([(5, 0), (6, 0)], key=lambda a: brute_force(PROMPT, a))
    assert ranked[0].label == ("x" if best == (5, 0) else "y")
    with pytest.raises(ValueError):
        await score_labels(engine.complete, PROMPT, ["x"], [(5, 0), (6, 0)])
