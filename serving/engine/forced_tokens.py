"""A vLLM logits processor that makes a request's output exactly the token ids it names.

vLLM computes the log-probabilities it returns from the raw logits, before any logits
processor runs (`vllm.v1.sample.sampler.Sampler.forward`). So a forced request that asks
for ``logprobs=0`` reports, for each forced token, the model's own log P(token | prompt,
tokens before): one request scores a whole continuation, and every step after the first
is a decode step that batches with other requests'.

The engine process loads this class by name (``FORCED_TOKENS_PROCESSOR``); requests carry
their ids in ``SamplingParams.extra_args[FORCED_TOKENS_ARG]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

#: the ``SamplingParams.extra_args`` key of a request's forced token ids
FORCED_TOKENS_ARG = "c2s_forced_token_ids"
#: how vLLM's engine args name the processor (it is imported in the engine process)
FORCED_TOKENS_PROCESSOR = "serving.engine.forced_tokens:ForcedTokensProcessor"


def force_next_token(
    forced: Sequence[int], output_ids: Sequence[int], logits: torch.Tensor
) -> torch.Tensor:
    """Logits that leave only the next forced token possible (then the model's own)."""
    step = len(output_ids)
    if step >= len(forced):
        return logits
    only = torch.full_like(logits, float("-inf"))
    only[forced[step]] = 0.0
    return only


class ForcedTokensProcessor(AdapterLogitsProcessor):
    """Applies `force_next_token` to the requests that name forced ids."""

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the greedy token too

    def new_req_logits_processor(self, params: SamplingParams):
        forced = (params.extra_args or {}).get(FORCED_TOKENS_ARG)
        return partial(force_next_token, tuple(forced)) if forced else None
