"""The checkpoints benchmarked: the embedded demo model and random-weight Pythia shapes.

Random checkpoints are written once under ``benchmarks/.work/`` (git-ignored) with the real
Pythia tokenizer from ``../shared/pythia-tokenizer``; without that tokenizer they are
skipped with a reason instead of failing the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import REPO_ROOT

WORK_DIR = REPO_ROOT / "benchmarks" / ".work"
DEMO_DIR = REPO_ROOT / "models" / "c2s-demo-pythia"
PYTHIA_TOKENIZER_DIR = REPO_ROOT.parent / "shared" / "pythia-tokenizer"


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint directory and what it is.

    Attributes
    ----------
    name
        Short id used in result keys (``demo``, ``pythia-410m-random``, ``tiny-random``).
    path
        The checkpoint directory (config, weights, tokenizer).
    description
        One line for the report.
    """

    name: str
    path: Path
    description: str

    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def to_json(self) -> dict:
        config = self.config()
        keys = (
            "num_hidden_layers",
            "hidden_size",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
        )
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "shape": {k: config.get(k) for k in keys},
            "parameters": parameter_count(config),
        }


def parameter_count(config: dict) -> int:
    """GPT-NeoX parameters (weights and biases of every layer, both embeddings)."""
    h, i, v, layers = (
        config["hidden_size"],
        config["intermediate_size"],
        config["vocab_size"],
        config["num_hidden_layers"],
    )
    per_layer = 4 * h * h + 4 * h + 2 * h * i + h + i + 4 * h  # attention, MLP, 2 layer norms
    return layers * per_layer + 2 * v * h + 2 * h


def demo_checkpoint() -> tuple[Checkpoint | None, str | None]:
    """The embedded demo model, or why it is missing."""
    if not (DEMO_DIR / "config.json").is_file() or not any(DEMO_DIR.glob("*.safetensors")):
        return None, f"{DEMO_DIR.relative_to(REPO_ROOT)} has no trained checkpoint yet"
    return Checkpoint("demo", DEMO_DIR, "embedded demo model (trained, Pythia structure)"), None


def random_checkpoint(shape_name: str) -> tuple[Checkpoint | None, str | None]:
    """A random-weight checkpoint of ``shape_name`` (``PYTHIA_410M`` or ``TINY``), written
    under ``benchmarks/.work/`` on first use, with the real Pythia tokenizer."""
    from serving.testing import random_checkpoint as rc

    if not (PYTHIA_TOKENIZER_DIR / "tokenizer.json").is_file():
        return None, f"the Pythia tokenizer is not at {PYTHIA_TOKENIZER_DIR}"
    shape = getattr(rc, shape_name)
    name = {"PYTHIA_410M": "pythia-410m-random", "TINY": "tiny-random"}[shape_name]
    out = WORK_DIR / "checkpoints" / name
    stamp = out / "benchmark-shape.json"
    wanted = shape.model_dump_json()
    if not (stamp.is_file() and stamp.read_text() == wanted):
        rc.write_random_gpt_neox(out, shape, PYTHIA_TOKENIZER_DIR, seed=0)
        stamp.write_text(wanted)
    description = {
        "pythia-410m-random": "random weights, C2S-Pythia-410m's exact shape, Pythia tokenizer",
        "tiny-random": "random weights, 2-layer GPT-NeoX (smoke tests), Pythia tokenizer",
    }[name]
    return Checkpoint(name, out, description), None
