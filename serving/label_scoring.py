"""Rank a set of answers by the model's log-probability, with a token trie over the engine.

The log-probability of an answer after a prompt is the sum, over the answer's tokens, of
each token's log-probability given the prompt and the tokens before it. The engine gives
one such step per request: a request with ``logprob_token_ids`` returns the raw
log-probabilities of exactly those ids as the next token after its prompt. So a set of
answers (token id sequences, each ending in EOS) is scored with one request per internal
node of their token trie:

- the root is the prompt itself, asking for the first tokens of every answer;
- an inner node is the prompt plus a shared answer prefix, asking for the tokens that
  follow that prefix;
- an answer's log-probability is the sum of the entries along its path.

The root request goes first, so that the prompt's full KV blocks are in the engine's
prefix cache before the other nodes, sent together, extend it by a few tokens each.

Nothing here knows tasks, HTTP or vLLM: the engine is a ``complete(prompt_ids, params)``
callable (`serving.engine.Engine.complete`, or a stage wrapper over Ray handles).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from serving.engine import Completion, GenerationParams
from serving.engine.params import MAX_LOGPROB_TOKEN_IDS

#: the engine as scoring sees it: token ids and params in, a finished completion out
CompleteFn = Callable[[Sequence[int], GenerationParams], Awaitable[Completion]]


@dataclass(frozen=True, slots=True)
class TrieNode:
    """One request of a scoring: an answer prefix and the token ids that follow it.

    Attributes
    ----------
    prefix
        Answer tokens appended to the prompt (empty at the root).
    children
        Distinct next tokens of the answers that start with ``prefix``, in first-seen order.
    """

    prefix: tuple[int, ...]
    children: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScoredLabel:
    """A label with its answer's log-probability and its probability within the set.

    ``probability`` is normalised over every label of the set (a softmax of the
    log-probabilities), so the probabilities of a whole set sum to 1.
    """

    label: str
    logprob: float
    probability: float

    def as_dict(self) -> dict[str, float | str]:
        return {"label": self.label, "probability": self.probability, "logprob": self.logprob}


def token_trie(answers: Sequence[Sequence[int]]) -> list[TrieNode]:
    """The inner nodes of the answers' token trie, root first.

    Raises
    ------
    ValueError
        When an answer is empty, or one answer is a proper prefix of another (answers
        end in EOS, so that never happens with distinct texts).
    """
    children: dict[tuple[int, ...], list[int]] = {(): []}
    for answer in answers:
        if not answer:
            raise ValueError("every answer needs at least one token (its EOS)")
        for depth, token in enumerate(answer):
            siblings = children.setdefault(tuple(answer[:depth]), [])
            if token not in siblings:
                siblings.append(token)
    ends = {tuple(a) for a in answers}
    if ends & children.keys():
        raise ValueError("an answer is a prefix of another: end every answer with EOS")
    return [TrieNode(prefix, tuple(kids)) for prefix, kids in children.items()]


def node_params(token_ids: Sequence[int]) -> GenerationParams:
    """One greedy step that returns the raw log-probabilities of ``token_ids``."""
    return GenerationParams.greedy(max_tokens=1, logprob_token_ids=tuple(token_ids))


async def node_logprobs(
    complete: CompleteFn, prompt_ids: Sequence[int], node: TrieNode
) -> dict[int, float]:
    """Log-probability of each child of ``node`` as the token after prompt + prefix.

    A node with more children than one request may ask for is split into requests on the
    same prompt, sent together.
    """
    ids = (*prompt_ids, *node.prefix)
    parts = [
        node.children[i : i + MAX_LOGPROB_TOKEN_IDS]
        for i in range(0, len(node.children), MAX_LOGPROB_TOKEN_IDS)
    ]
    completions = await asyncio.gather(*(complete(ids, node_params(part)) for part in parts))
    logprobs: dict[int, float] = {}
    for part, completion in zip(parts, completions, strict=True):
        (step,) = completion.outputs[0].logprobs or (None,)
        if step is None:
            raise RuntimeError("the engine returned no logprobs for a scoring request")
        logprobs.update({token: step.top[token] for token in part})
    return logprobs


async def answer_logprobs(
    complete: CompleteFn, prompt_ids: Sequence[int], answers: Sequence[Sequence[int]]
) -> list[float]:
    """log P(answer | prompt) for every answer, by one request per trie node.

    Parameters
    ----------
    complete
        The engine.
    prompt_ids
        The prompt, shared by every answer.
    answers
        Token ids of each answer, EOS included.
    """
    root, *inner = token_trie(answers)
    # the root alone first: its full KV blocks enter the prefix cache, and every other
    # node then recomputes only the prompt's last partial block plus its prefix
    found = {root.prefix: await node_logprobs(complete, prompt_ids, root)}
    results = await asyncio.gather(*(node_logprobs(complete, prompt_ids, n) for n in inner))
    found.update({node.prefix: r for node, r in zip(inner, results, strict=True)})
    return [
        math.fsum(found[tuple(answer[:d])][token] for d, token in enumerate(answer))
        for answer in answers
    ]


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Probabilities within the set: a softmax of the log-probabilities."""
    top = max(logprobs)
    if top == -math.inf:  # every answer impossible: the set carries no information
        return [1.0 / len(logprobs)] * len(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = math.fsum(weights)
    return [w / total for w in weights]


def rank_labels(
    labels: Sequence[str], logprobs: Sequence[float], top_k: int | None = None
) -> list[ScoredLabel]:
    """The labels best first (ties keep the set's order), the first ``top_k`` of them."""
    probabilities = normalise(logprobs)
    order = sorted(range(len(labels)), key=lambda i: -logprobs[i])
    return [ScoredLabel(labels[i], float(logprobs[i]), probabilities[i]) for i in order[:top_k]]


async def score_labels(
    complete: CompleteFn,
    prompt_ids: Sequence[int],
    labels: Sequence[str],
    answers: Sequence[Sequence[int]],
    top_k: int | None = None,
) -> list[ScoredLabel]:
    """Rank ``labels`` by their answers' log-probability after ``prompt_ids``.

    ``answers[i]`` holds the token ids the model would generate for ``labels[i]``
    (the rendered answer text and EOS).
    """
    if len(labels) != len(answers):
        raise ValueError("one answer per label")
    return rank_labels(labels, await answer_logprobs(complete, prompt_ids, answers), top_k)
