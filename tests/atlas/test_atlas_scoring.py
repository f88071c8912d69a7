"""The token-trie scorer against a brute-force sum, over a deterministic fake engine."""

from __future__ import annotations

import math

import pytest

from serving.engine import Completion, GeneratedSequence, GenerationParams, TokenLogprob
from serving.label_scoring import (
    answer_logprobs,
    normalise,
    rank_labels,
    score_labels,
    token_trie,
)
from serving.testing.fake_engine import hashed_logprob

PROMPT = (11, 12, 13, 14, 15, 16)


class RecordingEngine:
    """``complete`` answering ``logprob_token_ids`` with `hashed_logprob`; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    async def complete(self, ids, params: GenerationParams) -> Completion:
        assert params.max_tokens == 1 and params.temperature == 0.0
        ids = tuple(ids)
        self.requests.append((ids, params.logprob_token_ids))
        top = {t: hashed_logprob(ids, t) for t in params.logprob_token_ids}
        step = TokenLogprob(params.logprob_token_ids[0], top[params.logprob_token_ids[0]], top)
        return Completion("r", len(ids), (GeneratedSequence(0, "", (1,), "length", (step,)),))


def brute_force(prompt, answer) -> float:
    return math.fsum(
        hashed_logprob((*prompt, *answer[:d]), token) for d, token in enumerate(answer)
    )


ANSWERS = [(5, 6, 0), (5, 7, 0), (5, 6, 8, 0), (9, 0), (10, 11, 12, 13, 0)]


def test_trie_has_one_node_per_distinct_prefix():
    nodes = token_trie(ANSWERS)
    assert nodes[0].prefix == () and nodes[0].children == (5, 9, 10)
    prefixes = {n.prefix for n in nodes}
    expected = {a[:d] for a in ANSWERS for d in range(len(a))}
    assert prefixes == expected
    assert dict((n.prefix, n.children) for n in nodes)[(5, 6)] == (0, 8)


def test_trie_refuses_empty_and_prefix_answers():
    with pytest.raises(ValueError):
        token_trie([(1, 0), ()])
    with pytest.raises(ValueError):
        token_trie([(1, 2), (1, 2, 3)])


async def test_scores_equal_brute_force_and_root_goes_first():
    engine = RecordingEngine()
    scores = await answer_logprobs(engine.complete, PROMPT, ANSWERS)
    for answer, score in zip(ANSWERS, scores, strict=True):
        assert score == pytest.approx(brute_force(PROMPT, answer), abs=1e-12)
    assert engine.requests[0] == (PROMPT, (5, 9, 10))
    assert len(engine.requests) == len(token_trie(ANSWERS))


async def test_nodes_with_many_children_are_split_across_requests():
    answers = [(t, 0) for t in range(300, 600)]  # 300 first tokens: 3 root requests
    engine = RecordingEngine()
    scores = await answer_logprobs(engine.complete, PROMPT, answers)
    root = [r for r in engine.requests if r[0] == PROMPT]
    assert [len(ids) for _, ids in root] == [128, 128, 44]
    assert scores == [pytest.approx(brute_force(PROMPT, a), abs=1e-12) for a in answers]


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
