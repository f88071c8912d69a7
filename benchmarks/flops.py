"""Floating-point work of one request on a GPT-NeoX, for % of matmul peak.

Counts the multiply-adds (2 FLOPs each) a request needs at the least:

- every weight matrix of every layer for each prompt and output token;
- attention scores and the weighted sum of values, causal (token ``p`` attends ``p + 1``);
- the LM head once per generated token (for the last prompt position, then each decode
  step), as vLLM computes it; HF computes it for every prompt position in prefill,
  which this does not count.
"""

from __future__ import annotations


def linear_flops_per_token(config: dict) -> int:
    """Matmul FLOPs of all layers' weights for one token (QKV, dense, MLP)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return 2 * layers * (4 * h * h + 2 * h * i)


def lm_head_flops(config: dict) -> int:
    return 2 * config["hidden_size"] * config["vocab_size"]


def attention_flops(config: dict, first: int, last: int) -> int:
    """Score and value FLOPs of tokens at positions ``first`` .. ``last - 1``."""
    keys = (last * (last + 1) - first * (first + 1)) // 2  # sum of (p + 1)
    return 4 * config["num_hidden_layers"] * config["hidden_size"] * keys


def request_flops(config: dict, prompt_tokens: int, output_tokens: int) -> dict:
    """Prefill and decode FLOPs of one request (the first output token comes from prefill)."""
    per_token = linear_flops_per_token(config)
    head = lm_head_flops(config)
    prefill = prompt_tokens * per_token + attention_flops(config, 0, prompt_tokens) + head
    steps = max(0, output_tokens - 1)
    decode = steps * (per_token + head) + attention_flops(
        config, prompt_tokens, prompt_tokens + steps
    )
    return {"prefill": prefill, "decode": decode, "total": prefill + decode}
