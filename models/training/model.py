"""The demo model's shape: Pythia's GPT-NeoX structure, scaled down."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DemoShape:
    """Sizes of the demo GPT-NeoX; the rest is fixed to Pythia's structure."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head dim 64, as in Pythia-410m
    intermediate_size: int = 1024
    max_position_embeddings: int = 8192


def gpt_neox_config(vocab_size: int, shape: DemoShape = DemoShape(), dropout: float = 0.0):
    """A ``GPTNeoXConfig`` with Pythia's structure at the demo's size.

    As the C2S Pythia checkpoint: rotary on a quarter of each head (``rotary_pct`` 0.25,
    base 10000), parallel residual, 8192 positions with plain RoPE (no ``rope_scaling``),
    untied embeddings, and bos = eos = 0. ``dropout`` (attention and hidden) acts in
    training only; the engine ignores it.
    """
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size,
        **asdict(shape),
        rotary_pct=0.25,
        rotary_emb_base=10000,
        use_parallel_residual=True,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        attention_dropout=dropout,
        hidden_dropout=dropout,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        use_cache=True,
    )
