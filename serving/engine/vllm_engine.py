"""The vLLM adapter: the only module of the project that imports vllm."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import AsyncIterator, Sequence

import numpy as np
from vllm import PoolingParams, SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from serving.core.errors import ConfigError, EngineUnavailable, InvalidRequest, PromptTooLong
from serving.engine.checkpoint import read_checkpoint_facts, resolve_max_model_len
from serving.engine.config import EngineConfig
from serving.engine.forced_tokens import FORCED_TOKENS_ARG, FORCED_TOKENS_PROCESSOR
from serving.engine.outputs import (
    Completion,
    Embedding,
    EngineLimits,
    GeneratedSequence,
    SequenceDelta,
    StepOutput,
    TokenLogprob,
)
from serving.engine.params import GenerationParams

log = logging.getLogger(__name__)


def cpu_environment(config: EngineConfig, n_cores: int | None = None) -> dict[str, str]:
    """vLLM's CPU build takes its KV cache and thread binding from the environment only."""
    env = {"VLLM_CPU_KVCACHE_SPACE": str(config.kv_cache_gib)}
    n_cores = n_cores or os.cpu_count() or 1
    if config.cpu_threads_bind:
        env["VLLM_CPU_OMP_THREADS_BIND"] = config.cpu_threads_bind
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    elif config.cpu_cores == "all":
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{n_cores - 1}"
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return env


def to_sampling_params(
    params: GenerationParams, room: int, kind: RequestOutputKind
) -> SamplingParams:
    """Map engine-neutral params to vLLM's; ``room`` is the context left after the prompt."""
    max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
    try:
        return _sampling_params(params, max_tokens, kind)
    except ValueError as exc:  # vLLM's own checks (VLLMValidationError is a ValueError)
        raise InvalidRequest(str(exc), param=getattr(exc, "parameter", None)) from exc


def _sampling_params(
    params: GenerationParams, max_tokens: int, kind: RequestOutputKind
) -> SamplingParams:
    return SamplingParams(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k or 0,
        min_tokens=min(params.min_tokens, max_tokens),
        seed=params.seed,
        stop=list(params.stop) or None,
        stop_token_ids=list(params.stop_token_ids) or None,
        logprobs=params.logprobs,
        repetition_penalty=params.repetition_penalty,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        ignore_eos=params.ignore_eos,
        max_tokens=max_tokens,
        output_kind=kind,
        structured_outputs=_structured_outputs(params),
        logprob_token_ids=list(params.logprob_token_ids) or None,
        extra_args=(
            {FORCED_TOKENS_ARG: list(params.forced_token_ids)} if params.forced_token_ids else None
        ),
        # a forced answer is known text: only its log-probabilities are wanted
        detokenize=not params.forced_token_ids,
    )


def _structured_outputs(params: GenerationParams) -> StructuredOutputsParams | None:
    # vLLM >= 0.12 removed the guided_* fields and ignores them silently: never use them.
    if params.choices:
        return StructuredOutputsParams(choice=list(params.choices))
    if params.regex is not None:
        return StructuredOutputsParams(regex=params.regex)
    return None


def _check_cpu_head_dim(head_dim: int) -> None:
    # Otherwise the worker dies on the first request with an opaque kernel error.
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ConfigError(
            f"The checkpoint's attention head size is {head_dim}; vLLM's CPU attention "
            f"supports only {supported}.",
            param="model",
        )


def _logprobs_of(output, token_ids: Sequence[int]) -> tuple[TokenLogprob, ...] | None:
    if output.logprobs is None:
        return None
    steps = []
    for token_id, position in zip(token_ids, output.logprobs, strict=False):
        top = {tid: lp.logprob for tid, lp in position.items()}
        steps.append(TokenLogprob(token_id=token_id, logprob=top[token_id], top=top))
    return tuple(steps)


def _launch(config: EngineConfig, **engine_overrides: object) -> tuple[AsyncLLM, EngineLimits]:
    """Validate ``config`` against the checkpoint and start an AsyncLLM for it."""
    facts = read_checkpoint_facts(config.model)
    max_model_len = resolve_max_model_len(config, facts)
    if current_platform.is_cpu():
        _check_cpu_head_dim(facts.head_dim)
        os.environ.update(cpu_environment(config))
    args = dataclasses.replace(_engine_args(config, max_model_len), **engine_overrides)
    llm = AsyncLLM.from_engine_args(args)
    cache = llm.vllm_config.cache_config
    limits = EngineLimits(
        model=config.served_model_name or config.model,
        max_model_len=max_model_len,
        vocab_size=facts.vocab_size,
        eos_token_id=facts.eos_token_id,
        max_num_seqs=config.max_num_seqs,
        kv_cache_tokens=(cache.num_gpu_blocks or 0) * cache.block_size or None,
        dtype=config.dtype,
        device="cpu" if current_platform.is_cpu() else current_platform.device_name,
        kv_block_size=cache.block_size,
    )
    return llm, limits


def _engine_args(config: EngineConfig, max_model_len: int) -> AsyncEngineArgs:
    chunked = config.chunked_prefill(current_platform.is_cpu())
    step_tokens = config.max_num_batched_tokens
    if not chunked:  # every step must hold a whole prompt
        step_tokens = max(max_model_len, step_tokens or 0)
    return AsyncEngineArgs(
        model=config.model,
        tokenizer=config.tokenizer_path,
        served_model_name=config.served_model_name,
        dtype=config.dtype,
        max_model_len=max_model_len,
        seed=config.seed,
        enforce_eager=config.enforce_eager,
        enable_prefix_caching=config.enable_prefix_caching,
        enable_chunked_prefill=chunked,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=step_tokens,
        gpu_memory_utilization=config.gpu_memory_utilization,
        block_size=config.block_size,
        disable_log_stats=True,
    )


class _StartedLlm:
    """What every started AsyncLLM answers: limits, load, health, prompt checks, shutdown."""

    def __init__(self, config: EngineConfig, llm: AsyncLLM, limits: EngineLimits) -> None:
        self.config = config
        self._llm = llm
        self._limits = limits
        on_cpu = current_platform.is_cpu()
        #: the CPU build dies on a seeded request whose prompt is prefilled in chunks
        self._seeds_crash = on_cpu and config.chunked_prefill(on_cpu)

    @property
    def limits(self) -> EngineLimits:
        return self._limits

    def num_unfinished_requests(self) -> int:
        return self._llm.get_num_unfinished_requests()

    async def health(self) -> None:
        if self._llm.errored:
            raise EngineUnavailable(f"The engine has stopped: {self._llm.dead_error}")
        try:
            await self._llm.check_health()
        except Exception as exc:  # any failure of the probe means "not serving"
            raise EngineUnavailable(f"The engine failed its health check: {exc}") from exc

    def _check_prompt(self, prompt_ids: Sequence[int]) -> int:
        if len(prompt_ids) == 0:
            raise InvalidRequest("The prompt is empty: send at least one token.", param="prompt")
        limit = self._limits.max_model_len
        if len(prompt_ids) >= limit:
            raise PromptTooLong(len(prompt_ids), limit)
        vocab = self._limits.vocab_size
        if min(prompt_ids) < 0 or max(prompt_ids) >= vocab:
            raise InvalidRequest(f"Prompt token ids must lie in [0, {vocab}).", param="prompt")
        return limit - len(prompt_ids)

    async def _abort(self, request_id: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(self._llm.abort(request_id))

    def shutdown(self) -> None:
        self._llm.shutdown()


class VllmEngine(_StartedLlm):
    """A started vLLM async engine behind the project's `Engine` protocol.

    Prompts are token ids only: the engine never re-tokenises. Use `start` to build one.
    """

    @classmethod
    async def start(cls, config: EngineConfig) -> VllmEngine:
        """Validate ``config`` against the checkpoint, start the engine and warm it up."""
        engine = cls(config, *_launch(config, logits_processors=[FORCED_TOKENS_PROCESSOR]))
        await engine._warm_up()
        return engine

    async def _warm_up(self) -> None:
        # The bf16 CPU worker dies with SIGILL when its first request has 1-3 tokens.
        prompt = [self._limits.eos_token_id or 0] * self.config.warmup_prompt_tokens
        await self.complete(prompt, GenerationParams.greedy(max_tokens=2))

    def _check_params(self, params: GenerationParams) -> None:
        if params.seed is not None and self._seeds_crash:
            raise InvalidRequest(
                "Per-request seeds are unavailable on this engine: the CPU build with "
                "chunked prefill crashes on them. Omit 'seed', or start the engine with "
                "enable_chunked_prefill unset (auto) or false.",
                param="seed",
            )
        vocab = self._limits.vocab_size
        for name in ("logprob_token_ids", "forced_token_ids"):
            ids = getattr(params, name)
            if ids and max(ids) >= vocab:
                raise InvalidRequest(f"{name} must lie in [0, {vocab}).", param=name)

    async def generate(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        request_id: str | None = None,
        *,
        _kind: RequestOutputKind = RequestOutputKind.DELTA,
    ) -> AsyncIterator[StepOutput]:
        """Stream a request step by step; closing or cancelling the stream aborts it."""
        room = self._check_prompt(prompt_ids)
        self._check_params(params)
        if self._llm.errored:
            raise EngineUnavailable("The engine has stopped; it cannot take requests.")
        request_id = request_id or uuid.uuid4().hex
        sampling = to_sampling_params(params, room, _kind)
        finished = False
        try:
            stream = self._llm.generate(
                TokensPrompt(prompt_token_ids=list(prompt_ids)), sampling, request_id
            )
            async for out in stream:
                finished = out.finished
                yield StepOutput(
                    request_id=request_id,
                    prompt_tokens=len(prompt_ids),
                    deltas=tuple(
                        SequenceDelta(
                            index=o.index,
                            text=o.text,
                            token_ids=tuple(o.token_ids),
                            finish_reason=o.finish_reason,
                            logprobs=_logprobs_of(o, o.token_ids),
                        )
                        for o in out.outputs
                    ),
                    finished=out.finished,
                )
        except EngineDeadError as exc:
            raise EngineUnavailable(f"The engine died while serving the request: {exc}") from exc
        finally:
            if not finished:
                # vLLM aborts on cancellation too; this also covers a consumer that stops
                # iterating early without cancelling.
                await self._abort(request_id)

    async def complete(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None = None
    ) -> Completion:
        """Run one request to the end and return every choice."""
        last: StepOutput | None = None
        async for step in self.generate(
            prompt_ids, params, request_id, _kind=RequestOutputKind.FINAL_ONLY
        ):
            last = step
        assert last is not None and last.finished
        outputs = sorted(last.deltas, key=lambda d: d.index)
        return Completion(
            request_id=last.request_id,
            prompt_tokens=last.prompt_tokens,
            outputs=tuple(
                GeneratedSequence(d.index, d.text, d.token_ids, d.finish_reason, d.logprobs)
                for d in outputs
            ),
        )


#: C2S embeddings: the mean of the last hidden state (after the final layer norm) over
#: the prompt's tokens, not normalised
EMBEDDING_POOLER = {"pooling_type": "MEAN", "use_activation": False}


class VllmEmbedder(_StartedLlm):
    """A vLLM engine in pooling mode behind the project's `Embedder` protocol.

    A separate engine beside the generating one, on the same checkpoint: vLLM's pooling
    runner returns the mean of the last hidden state over exactly the prompt's tokens
    (a masked mean; there is no padding). Prefix caching and chunked prefill are off:
    mean pooling needs the hidden state of every prompt token in one step. Use `start` to
    build one.
    """

    @classmethod
    async def start(cls, config: EngineConfig) -> VllmEmbedder:
        """Validate ``config`` against the checkpoint, start the pooling engine, warm it up."""
        max_model_len = resolve_max_model_len(config, read_checkpoint_facts(config.model))
        llm, limits = _launch(
            config,
            runner="pooling",
            convert="embed",
            pooler_config=dict(EMBEDDING_POOLER),
            enable_prefix_caching=False,
            # MEAN pooling refuses a prompt prefilled in chunks ("partial prefill is not
            # supported"), which kills the engine: every step must hold whole prompts
            enable_chunked_prefill=False,
            max_num_batched_tokens=max(max_model_len, config.max_num_batched_tokens or 0),
        )
        embedder = cls(config, llm, limits)
        # the same bf16 CPU crash on a very short first request as the generating engine
        await embedder.embed([limits.eos_token_id or 0] * config.warmup_prompt_tokens)
        return embedder

    async def embed(self, prompt_ids: Sequence[int], request_id: str | None = None) -> Embedding:
        """The embedding of one prompt; cancelling the caller aborts the request."""
        self._check_prompt(prompt_ids)
        if self._llm.errored:
            raise EngineUnavailable("The embedding engine has stopped; it cannot take requests.")
        request_id = request_id or uuid.uuid4().hex
        last = None
        try:
            stream = self._llm.encode(
                # plain ints: vLLM's serialiser refuses numpy integers
                TokensPrompt(prompt_token_ids=[int(t) for t in prompt_ids]),
                PoolingParams(task="embed"),
                request_id,
            )
            async for out in stream:
                last = out
        except EngineDeadError as exc:
            raise EngineUnavailable(f"The embedding engine died: {exc}") from exc
        finally:
            if last is None or not last.finished:
                await self._abort(request_id)
        values = last.outputs.data.float().cpu().numpy().astype(np.float32, copy=False)
        return Embedding(request_id=request_id, prompt_tokens=len(prompt_ids), values=values)
