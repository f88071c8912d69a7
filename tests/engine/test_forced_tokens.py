"""The forced-token logits processor's per-request rule and the params that carry it."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from serving.engine import GenerationParams
from serving.engine.forced_tokens import FORCED_TOKENS_ARG, force_next_token
from serving.engine.vllm_engine import to_sampling_params


def test_only_the_next_forced_token_stays_possible_then_the_model_decides():
    logits = torch.tensor([0.5, 2.0, -1.0, 3.0])
    step_one = force_next_token((2, 0), [], logits.clone())
    assert step_one.tolist() == [float("-inf"), float("-inf"), 0.0, float("-inf")]
    assert force_next_token((2, 0), [2], logits.clone()).argmax().item() == 0
    after = force_next_token((2, 0), [2, 0], logits)
    assert after is logits  # past the forced ids: untouched


def test_forced_ids_travel_in_extra_args_and_exclude_other_constraints():
    from vllm.sampling_params import RequestOutputKind

    params = GenerationParams.greedy(max_tokens=3, forced_token_ids=(5, 6, 0), logprobs=0)
    sampling = to_sampling_params(params, room=100, kind=RequestOutputKind.FINAL_ONLY)
    assert sampling.extra_args == {FORCED_TOKENS_ARG: [5, 6, 0]}
    plain = to_sampling_params(
        GenerationParams.greedy(max_tokens=3), room=100, kind=RequestOutputKind.FINAL_ONLY
    )
    assert not plain.extra_args
    for bad in ({"choices": ("a",)}, {"regex": "a"}, {"forced_token_ids": (-1,)}):
        with pytest.raises(ValidationError):
            GenerationParams.greedy(max_tokens=1, **({"forced_token_ids": (1,)} | bad))
