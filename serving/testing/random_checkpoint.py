"""Random-weight GPT-NeoX checkpoints with Pythia's structure, for tests and benchmarks.

Weights are random, so outputs are meaningless, but the compute, the context length and
the code paths (rotary_pct 0.25, parallel residual, 8192 positions) are the real ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class GptNeoxShape(BaseModel):
    """The size of a GPT-NeoX; structure (rotary_pct, parallel residual) stays Pythia's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int = 50304
    max_position_embeddings: int = 8192


#: the exact shape of C2S-Pythia-410m (and Pythia-410m)
PYTHIA_410M = GptNeoxShape(
    num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096
)
#: small enough that a CPU engine starts in seconds; head size 64 as in Pythia, since
#: vLLM's CPU attention supports only some head sizes (16 is not one)
TINY = GptNeoxShape(
    num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512
)


def write_random_gpt_neox(
    out_dir: Path, shape: GptNeoxShape, tokenizer_dir: Path, *, seed: int = 0
) -> Path:
    """Write a random-weight GPT-NeoX (safetensors, fp32) and copy a tokenizer beside it.

    Parameters
    ----------
    out_dir
        Checkpoint directory to create.
    shape
        Model size.
    tokenizer_dir
        Directory holding ``tokenizer.json`` (and its config files) to ship with it.
    seed
        Torch seed for the weights.

    Returns
    -------
    The checkpoint directory.
    """
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        **shape.model_dump(),
        rotary_pct=0.25,
        rotary_emb_base=10000,
        use_parallel_residual=True,
        hidden_act="gelu",
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copyfile(tokenizer_dir / name, out_dir / name)
    return out_dir
