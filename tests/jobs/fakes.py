"""A deterministic serving stack without vLLM, shared by the tests and their subprocesses.

The real `BuildStage` and `DecodeStage` over Pythia's tokenizer, and `FakeEngine` whose
answers depend only on the prompt's token ids, so that any two runs over the same cells
give the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from serving.bulk import AnnotateConfig, ExecutionConfig, StagesRunner
from serving.core.pipeline import LocalStages
from serving.core.stages import BuildStage, DecodeStage
from serving.engine import EngineConfig
from serving.testing.fake_engine import FakeEngine

TOKENIZER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "pythia-tokenizer"
LABELS = ("B cell", "T cell", "Monocyte", "NK cell")
TISSUE = "peripheral blood"
MODEL_NAME = "fake-c2s"
_CELL_HEADER = re.compile(r"(?:^|\n)Cell (\d+):\n")

Reply = Callable[[Sequence[int]], str]


def scripted(decode: Callable[[Sequence[int]], str]) -> Reply:
    """Labels drawn from the prompt ids: one per cell for multi-cell prompts, a tissue
    when the prompt's cue asks for one."""

    def reply(ids: Sequence[int]) -> str:
        text = decode(list(ids))
        n_cells = len(_CELL_HEADER.findall(text))
        if n_cells and "tissue" in text.rsplit("\n", 1)[-1].lower():
            return f" {TISSUE}."
        seed = sum(ids)
        if n_cells:
            blocks = "".join(
                f"Cell {i}:\n{LABELS[(seed + i) % len(LABELS)]}.\n" for i in range(1, n_cells + 1)
            )
            return f" {blocks}."
        return f" {LABELS[seed % len(LABELS)]}."

    return reply


def fake_stages(
    reply: Reply | None = None, *, step_delay_s: float = 0.0, tokenizer_dir: Path = TOKENIZER_DIR
) -> LocalStages:
    """The plain stages over a `FakeEngine` (``reply``: `scripted` by default)."""
    build = BuildStage.from_model(tokenizer_dir)
    encoder = build.builder.encoder
    engine = FakeEngine(
        reply or scripted(encoder.decode), encoder.encode, encoder.decode, step_delay_s=step_delay_s
    )
    return LocalStages(build, engine, DecodeStage.from_model(tokenizer_dir))


def fake_runner(stages: LocalStages | None = None, **kwargs) -> StagesRunner:
    return StagesRunner(stages or fake_stages(**kwargs), MODEL_NAME, request_cells=16)


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
