"""The engine layer: config, params, outputs and the protocol every engine implements.

`serving.engine.vllm_engine.VllmEngine` is imported lazily (by `start_vllm_engine`) so that
code and tests that never start an engine do not pay for importing vllm.
"""

from serving.engine.config import EngineConfig
from serving.engine.interface import Embedder, Engine
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


async def start_vllm_engine(config: EngineConfig) -> Engine:
    """Start the vLLM engine described by ``config``."""
    from serving.engine.vllm_engine import VllmEngine

    return await VllmEngine.start(config)


async def start_vllm_embedder(config: EngineConfig) -> Embedder:
    """Start a vLLM pooling engine that embeds prompts of the checkpoint in ``config``."""
    from serving.engine.vllm_engine import VllmEmbedder

    return await VllmEmbedder.start(config)


__all__ = [
    "Completion",
    "Embedder",
    "Embedding",
    "Engine",
    "EngineConfig",
    "EngineLimits",
    "GeneratedSequence",
    "GenerationParams",
    "SequenceDelta",
    "StepOutput",
    "TokenLogprob",
    "start_vllm_embedder",
    "start_vllm_engine",
]
