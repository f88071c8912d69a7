"""`EngineConfig`: the one typed configuration of the engine adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineConfig(BaseModel):
    """How to run one vLLM engine over one checkpoint.

    Built once at the edge (CLI, config file, ``AppConfig``) and passed down unchanged.

    Attributes
    ----------
    model
        Local checkpoint directory or Hugging Face id.
    tokenizer
        Tokenizer path or id; defaults to ``model``.
    dtype
        Compute dtype. bf16 is the right choice on CPUs with AVX512-BF16/AMX and on GPUs.
    max_model_len
        Context length. ``None`` takes the checkpoint's ``max_position_embeddings``
        (8192 for the C2S Pythia checkpoint, whose context was extended with plain RoPE).
    rope_scaling
        Extra RoPE scaling. Refused for checkpoints trained without it.
    kv_cache_gib
        KV cache size on the CPU build, in GiB (``VLLM_CPU_KVCACHE_SPACE``).
    gpu_memory_utilization
        Fraction of GPU memory vLLM may use, on the CUDA build.
    cpu_cores
        ``"server"`` leaves one core to the HTTP/Ray side (vLLM's default binding);
        ``"all"`` binds the worker to every core, which measured about 1.8x faster for
        an offline job on a 2-core machine.
    cpu_threads_bind
        Explicit ``VLLM_CPU_OMP_THREADS_BIND`` (e.g. ``"0-3"``), overriding ``cpu_cores``.
    enforce_eager
        Skip torch.compile. Compilation of the CPU graph can take many minutes, so tests,
        demos and servers that must start fast keep this on; long bulk jobs may turn it off.
    enable_chunked_prefill
        ``None`` (auto) turns it on, except on the CPU build: there a request with a
        per-request ``seed`` kills the engine ("CPU Generator does not use offset") when
        its prompt is prefilled in chunks, so whole prompts are prefilled in one step
        (the step budget becomes ``max_model_len``). Forced on for the CPU build, seeded
        requests are refused rather than crash the engine; `for_offline_job` does that.
    warmup_prompt_tokens
        Length of the warm-up request sent at start. The bf16 CPU build dies on a first
        request of 1-3 tokens; a first request of at least 6 tokens avoids it.
    block_size
        Tokens per KV cache block; ``None`` keeps vLLM's default (128 on the CPU build,
        16 on GPUs). Prefix caching reuses whole blocks only, so a request that extends a
        cached prompt recomputes up to ``block_size - 1`` of its tokens: label scoring
        (`serving.core.label_scoring`) sends many such requests and is cheaper with small
        blocks. The CPU kernels want a multiple of 32.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    tokenizer: str | None = None
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    max_model_len: int | None = Field(default=None, ge=16)
    rope_scaling: dict[str, float | str] | None = None
    kv_cache_gib: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    cpu_cores: Literal["server", "all"] = "server"
    cpu_threads_bind: str | None = None
    enforce_eager: bool = True
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool | None = None
    max_num_seqs: int = Field(default=256, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=16)
    seed: int = 0
    warmup_prompt_tokens: int = Field(default=8, ge=6)
    served_model_name: str | None = None
    block_size: int | None = Field(default=None, ge=8, le=512)

    @property
    def public_name(self) -> str:
        """The name clients use: ``served_model_name``, else the checkpoint directory's own
        name, else the hub id as given."""
        if self.served_model_name:
            return self.served_model_name
        path = Path(self.model)
        return path.name if path.is_dir() else self.model

    @classmethod
    def for_offline_job(cls, model: str, **options: object) -> EngineConfig:
        """An engine for an offline job that owns the machine: threads on every core, and
        chunked prefill on, so decode steps ride along the prefill chunks (bulk prediction
        on the 410m shape: 1.35 cells/s with it, 1.18 without, in two `make bench` runs). Its requests carry no per-request
        seeds, the one thing chunked prefill breaks on the CPU build. ``options`` win."""
        return cls(
            **({"cpu_cores": "all", "enable_chunked_prefill": True} | options | {"model": model})
        )

    def chunked_prefill(self, on_cpu: bool) -> bool:
        """Whether chunked prefill is on for this platform (see the attribute's notes)."""
        if self.enable_chunked_prefill is None:
            return not on_cpu
        return self.enable_chunked_prefill

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer or self.model
