"""Facts about a checkpoint that the engine config must agree with."""

from __future__ import annotations

from dataclasses import dataclass

from serving.core.errors import ConfigError
from serving.engine.config import EngineConfig


@dataclass(frozen=True, slots=True)
class CheckpointFacts:
    """The parts of a checkpoint's ``config.json`` that bound how it may be served."""

    architecture: str
    max_position_embeddings: int
    rope_scaling: dict | None
    vocab_size: int
    eos_token_id: int | None
    head_dim: int


def read_checkpoint_facts(model: str) -> CheckpointFacts:
    """Read a local directory's or a cached Hugging Face id's ``config.json``."""
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(model)
    rope_scaling = getattr(hf_config, "rope_scaling", None)
    # transformers 5 reports plain RoPE as {"rope_type": "default", ...}: not a scaling
    if isinstance(rope_scaling, dict) and rope_scaling.get("rope_type", "default") == "default":
        rope_scaling = None
    return CheckpointFacts(
        architecture=(hf_config.architectures or [hf_config.model_type])[0],
        max_position_embeddings=int(hf_config.max_position_embeddings),
        rope_scaling=rope_scaling,
        vocab_size=int(hf_config.vocab_size),
        eos_token_id=getattr(hf_config, "eos_token_id", None),
        head_dim=int(hf_config.hidden_size // hf_config.num_attention_heads),
    )


def resolve_max_model_len(config: EngineConfig, facts: CheckpointFacts) -> int:
    """Check ``config`` against the checkpoint and return the context length to serve.

    Raises
    ------
    ConfigError
        If the config adds RoPE scaling to a checkpoint trained without it (the C2S
        Pythia context was extended to 8192 with plain RoPE, so scaling would change
        every position the model learned), or asks for a longer context than the
        checkpoint's positions without scaling.
    """
    if config.rope_scaling and not facts.rope_scaling:
        raise ConfigError(
            f"rope_scaling={config.rope_scaling} was requested, but the checkpoint "
            f"{config.model!r} has no rope_scaling in its config: it was trained with plain "
            f"RoPE up to {facts.max_position_embeddings} positions. Remove rope_scaling.",
            param="rope_scaling",
        )
    max_len = config.max_model_len or facts.max_position_embeddings
    if max_len > facts.max_position_embeddings and not facts.rope_scaling:
        raise ConfigError(
            f"max_model_len={max_len} exceeds the checkpoint's max_position_embeddings="
            f"{facts.max_position_embeddings}.",
            param="max_model_len",
        )
    return max_len


def local_model_dir(model: str) -> str:
    """A directory holding the model's config and tokenizer files.

    A Hugging Face id is resolved through the local cache (downloading the small files
    if they are missing), so prompt builders and decoders can read the tokenizer.
    """
    from pathlib import Path

    if Path(model).is_dir():
        return model
    from huggingface_hub import snapshot_download

    return snapshot_download(model, allow_patterns=["*.json", "*.txt", "*.model"])
