"""A deterministic serving stack without vLLM, shared by the tests and their subprocesses.

The real `BuildStage` and `DecodeStage` over Pythia's tokenizer, and `FakeEngine` whose
answers (`serving.testing.fake_engine.scripted`) depend only on the prompt's token ids,
so that any two runs over the same cells give the same rows.
"""

from __future__ import annotations

from pathlib import Path

from serving.bulk import AnnotateConfig, ExecutionConfig, PipelineRunner
from serving.core.pipeline import LocalPipeline
from serving.core.stages import BuildStage, DecodeStage
from serving.engine import EngineConfig
from serving.testing.fake_engine import LABELS, TISSUE, FakeEngine, Reply, scripted

TOKENIZER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "pythia-tokenizer"
MODEL_NAME = "fake-c2s"

#: re-exported for the tests that check scripted answers
__all__ = ["LABELS", "MODEL_NAME", "TISSUE", "fake_runner", "fake_stages", "job_config", "scripted"]


def fake_stages(
    reply: Reply | None = None, *, step_delay_s: float = 0.0, tokenizer_dir: Path = TOKENIZER_DIR
) -> LocalPipeline:
    """The plain stages over a `FakeEngine` (``reply``: `scripted` by default)."""
    build = BuildStage.from_model(tokenizer_dir)
    encoder = build.builder.encoder
    engine = FakeEngine(
        reply or scripted(encoder.decode), encoder.encode, encoder.decode, step_delay_s=step_delay_s
    )
    return LocalPipeline(build, engine, DecodeStage.from_model(tokenizer_dir))


def fake_runner(stages: LocalPipeline | None = None, **kwargs) -> PipelineRunner:
    return PipelineRunner(stages or fake_stages(**kwargs), MODEL_NAME, request_cells=16)


def job_config(input_path: Path, out: Path, **settings) -> AnnotateConfig:
    """A config whose runner is injected by the test (the mode names no real engine)."""
    execution = settings.pop("execution", {})
    return AnnotateConfig(
        input=input_path,
        out=out,
        execution=ExecutionConfig(
            mode="local",
            engine=EngineConfig(model=str(TOKENIZER_DIR)),
            model_dir=TOKENIZER_DIR,
            **execution,
        ),
        **settings,
    )
