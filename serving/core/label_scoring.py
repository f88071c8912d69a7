"""Rank a set of answers by the model's log-probability after a prompt.

The log-probability of an answer after a prompt is the sum, over the answer's tokens, of
each token's log-probability given the prompt and the tokens before it. The engine gives
it in one request per answer: a request with ``forced_token_ids`` (the answer) and
``logprobs=0`` generates exactly the answer and reports the raw log-probability of each of
its tokens (`serving.engine.forced_tokens`).

The prompt goes alone first, so that its full KV blocks are in the engine's prefix cache
before the answers, sent together, extend it: each answer then recomputes only the
prompt's last partial block, and decodes its tokens in steps shared by all the answers.

Nothing here knows tasks, HTTP or vLLM: the engine is a ``complete(prompt_ids, params)``
callable (`serving.engine.Engine.complete`, or a stage wrapper over Ray handles).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from serving.engine import Completion, GenerationParams

#: the engine as scoring sees it: token ids and params in, a finished completion out
CompleteFn = Callable[[Sequence[int], GenerationParams], Awaitable[Completion]]
#: the prompt's own request: one step, which fills the prefix cache
PROMPT_PARAMS = GenerationParams.greedy(max_tokens=1)
#: KV block size for engines that score: every answer recomputes the prompt's last partial
#: block, so small blocks pay off (K = 10 cost 1.42x a greedy prediction at 32 tokens,
#: 2.12x at the CPU build's default 128; BENCHMARKS.md, label scoring)
SCORING_BLOCK_SIZE = 32


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


def answer_params(answer: Sequence[int]) -> GenerationParams:
    """Generate exactly ``answer``, reporting each token's raw log-probability."""
    return GenerationParams.greedy(
        max_tokens=len(answer), forced_token_ids=tuple(answer), logprobs=0, ignore_eos=True
    )


def forced_logprob(answer: Sequence[int], completion: Completion) -> float:
    """The sum of the answer's token log-probabilities in a forced completion."""
    output = completion.outputs[0]
    if tuple(output.token_ids) != tuple(answer) or output.logprobs is None:
        raise RuntimeError("the engine did not generate the forced answer with its logprobs")
    return math.fsum(step.logprob for step in output.logprobs)


async def answer_logprobs(
    complete: CompleteFn, prompt_ids: Sequence[int], answers: Sequence[Sequence[int]]
) -> list[float]:
    """log P(answer | prompt) for every answer: the prompt alone, then one request each.

    Parameters
    ----------
    complete
        The engine.
    prompt_ids
        The prompt, shared by every answer.
    answers
        Token ids of each answer, EOS included.
    """
    if any(not answer for answer in answers):
        raise ValueError("every answer needs at least one token (its EOS)")
    await complete(prompt_ids, PROMPT_PARAMS)
    completions = await asyncio.gather(
        *(complete(prompt_ids, answer_params(answer)) for answer in answers)
    )
    return [forced_logprob(a, c) for a, c in zip(answers, completions, strict=True)]


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
