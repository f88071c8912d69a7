"""Session fixtures shared by every test layer.

The real vLLM CPU engine is started once per session, on a random-weight GPT-NeoX with
Pythia's structure and the real Pythia tokenizer, at an 8192-token context.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.session_exit"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
PYTHIA_TOKENIZER_DIR = SHARED_DIR / "pythia-tokenizer"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def pythia_tokenizer_dir() -> Path:
    if not (PYTHIA_TOKENIZER_DIR / "tokenizer.json").exists():
        pytest.skip("../shared/pythia-tokenizer is not beside the repository")
    return PYTHIA_TOKENIZER_DIR


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, pythia_tokenizer_dir) -> Path:
    """A random tiny GPT-NeoX (rotary_pct 0.25, parallel residual, 8192 positions)."""
    from serving.testing.random_checkpoint import TINY, write_random_gpt_neox

    return write_random_gpt_neox(
        tmp_path_factory.mktemp("tiny-gpt-neox"), TINY, pythia_tokenizer_dir, seed=0
    )


@pytest.fixture(scope="session")
async def engine_with_first_reply(tiny_checkpoint):
    """The started engine, and its reply to a 1-token first user request.

    The reply is taken right after start because the bf16 CPU build crashes on a very
    short *first* request; the adapter's warm-up must make this safe.
    """
    from serving.engine import EngineConfig, GenerationParams, start_vllm_engine

    engine = await start_vllm_engine(EngineConfig(model=str(tiny_checkpoint)))
    first = await engine.complete([42], GenerationParams.greedy(max_tokens=4))
    yield engine, first
    engine.shutdown()


@pytest.fixture(scope="session")
def engine(engine_with_first_reply):
    return engine_with_first_reply[0]
