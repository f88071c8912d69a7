"""What the prompt and decode stages take and return (`serving.core.stages`).

Plain frozen records, so that a chunk of them crosses a Ray Serve call as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.core.tasks.templates import TemplateChoice
from serving.engine.params import GenerationParams
from tokenizer_ext.ranking import RankedCells
from tokenizer_ext.sentences import ranked_to_sentences
from tokenizer_ext.vocab import GeneVocabulary


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """One prompt to build: a task with its inputs, or a raw prompt (text or ids)."""

    task: str | None = None
    inputs: Mapping[str, Any] | None = None
    raw_prompt: str | tuple[int, ...] | None = None
    template: TemplateChoice = 0


@dataclass(frozen=True, slots=True)
class RankedPromptRequest:
    """One ``task`` prompt per ranked cell: one-cell inputs given as ranked genes.

    Attributes
    ----------
    task
        The task's name.
    cells
        Each cell's genes, most expressed first, as words of ``vocabulary``.
    vocabulary
        The dataset's genes.
    fields
        The inputs' other values (the same for every cell).
    templates
        The template index of each cell's prompt.
    """

    task: str
    cells: RankedCells
    vocabulary: GeneVocabulary
    fields: Mapping[str, Any]
    templates: Sequence[int]

    def sentence_inputs(self) -> list[dict[str, Any]]:
        """The same inputs with each cell as its sentence (for paths that need text)."""
        sentences = ranked_to_sentences(self.cells, self.vocabulary)
        return [{**self.fields, "cell": sentence} for sentence in sentences]


@dataclass(frozen=True, slots=True)
class PreparedPrompt:
    """A built prompt: token ids plus the task's default sampling."""

    token_ids: tuple[int, ...]
    params: GenerationParams
    task: str | None = None
    template_index: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    """One generated answer to parse, and token ids to render as text (for logprobs)."""

    task: str | None
    text: str
    token_ids: tuple[int, ...] = field(default=())
    reconstruct_expression: bool = False


@dataclass(frozen=True, slots=True)
class DecodedResult:
    """A parsed answer (``None`` for raw prompts) and the text of each requested token."""

    result: dict[str, Any] | None
    tokens: dict[int, str] = field(default_factory=dict)
