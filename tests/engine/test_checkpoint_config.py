"""The engine config is checked against the checkpoint before anything starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.core.errors import ConfigError
from serving.engine import EngineConfig, GenerationParams
from serving.engine.checkpoint import read_checkpoint_facts, resolve_max_model_len


def test_facts_of_a_pythia_shaped_checkpoint(tiny_checkpoint):
    facts = read_checkpoint_facts(str(tiny_checkpoint))
    assert facts.architecture == "GPTNeoXForCausalLM"
    assert facts.max_position_embeddings == 8192
    assert facts.rope_scaling is None
    assert facts.vocab_size == 50304
    assert facts.eos_token_id == 0
    assert facts.head_dim == 64


def test_max_model_len_defaults_to_the_checkpoint_positions(tiny_checkpoint):
    facts = read_checkpoint_facts(str(tiny_checkpoint))
    assert resolve_max_model_len(EngineConfig(model=str(tiny_checkpoint)), facts) == 8192
    shorter = EngineConfig(model=str(tiny_checkpoint), max_model_len=4096)
    assert resolve_max_model_len(shorter, facts) == 4096


def test_rope_scaling_on_a_plain_rope_checkpoint_is_refused(tiny_checkpoint):
    facts = read_checkpoint_facts(str(tiny_checkpoint))
    config = EngineConfig(
        model=str(tiny_checkpoint), rope_scaling={"rope_type": "linear", "factor": 2.0}
    )
    with pytest.raises(ConfigError, match="no rope_scaling") as err:
        resolve_max_model_len(config, facts)
    assert err.value.param == "rope_scaling"


def test_context_past_the_checkpoint_positions_is_refused(tiny_checkpoint):
    facts = read_checkpoint_facts(str(tiny_checkpoint))
    config = EngineConfig(model=str(tiny_checkpoint), max_model_len=16384)
    with pytest.raises(ConfigError, match=r"16384 exceeds .*=8192"):
        resolve_max_model_len(config, facts)


def test_unknown_engine_options_are_errors():
    with pytest.raises(ValidationError, match="extra_forbidden"):
        EngineConfig(model="m", kv_cache_space=4)


def test_warmup_must_be_long_enough_for_the_bf16_pitfall():
    with pytest.raises(ValidationError):
        EngineConfig(model="m", warmup_prompt_tokens=3)


def test_cpu_environment_per_mode():
    from serving.engine.vllm_engine import cpu_environment

    server = cpu_environment(EngineConfig(model="m", kv_cache_gib=2), n_cores=2)
    assert server == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    offline = cpu_environment(EngineConfig(model="m", cpu_cores="all"), n_cores=2)
    assert offline["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert offline["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    explicit = cpu_environment(EngineConfig(model="m", cpu_threads_bind="2-5"), n_cores=8)
    assert explicit["VLLM_CPU_OMP_THREADS_BIND"] == "2-5"


def test_sampling_params_mapping_clamps_to_the_room_left():
    from vllm.sampling_params import RequestOutputKind

    from serving.engine.vllm_engine import to_sampling_params

    params = GenerationParams(max_tokens=500, temperature=0.5, top_k=None, stop=("\n",), n=2)
    sampling = to_sampling_params(params, room=100, kind=RequestOutputKind.DELTA)
    assert sampling.max_tokens == 100
    assert sampling.top_k in (0, -1)
    assert sampling.stop == ["\n"]
    assert sampling.n == 2
    unbounded = to_sampling_params(
        GenerationParams(max_tokens=None), room=77, kind=RequestOutputKind.FINAL_ONLY
    )
    assert unbounded.max_tokens == 77


def test_several_greedy_choices_are_refused_with_a_reason():
    with pytest.raises(ValidationError, match="temperature > 0 or n=1"):
        GenerationParams(n=2, temperature=0.0)


def test_chunked_prefill_is_off_by_default_only_on_cpu():
    auto = EngineConfig(model="m")
    assert auto.chunked_prefill(on_cpu=True) is False
    assert auto.chunked_prefill(on_cpu=False) is True
    forced = EngineConfig(model="m", enable_chunked_prefill=True)
    assert forced.chunked_prefill(on_cpu=True) is True
