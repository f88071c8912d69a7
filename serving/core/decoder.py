"""`Decoder`: a task's generated answer text -> its typed result.

A plain class with no Ray or HTTP in it, shared by the gateway, the bulk job and the
demo's evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from serving.core.prompt_builder import read_model_genes
from serving.core.tasks import default_registry
from serving.core.tasks.registry import TaskRegistry
from serving.core.tasks.results import TaskResult
from serving.core.tasks.spec import TaskSpec


class Decoder:
    """Parses generated text with each task's parser.

    Parameters
    ----------
    vocabulary
        Gene symbols that count as valid genes (compared upper-cased); ``None`` counts
        every generated word as a gene.
    registry
        The tasks; the built-in twelve by default.
    """

    def __init__(
        self, vocabulary: Iterable[str] | None = None, *, registry: TaskRegistry | None = None
    ) -> None:
        self.vocabulary = None if vocabulary is None else frozenset(g.upper() for g in vocabulary)
        self.registry = registry or default_registry()

    @classmethod
    def from_model(cls, model_dir: str | Path, *, registry: TaskRegistry | None = None) -> Decoder:
        """A decoder that validates genes against the genes a model directory lists."""
        return cls(read_model_genes(model_dir), registry=registry)

    def decode(self, task: str | TaskSpec, text: str) -> TaskResult:
        """The typed result of one generated answer (the text after the prompt)."""
        spec = task if isinstance(task, TaskSpec) else self.registry.get(task)
        return spec.parser(text, self.vocabulary)
