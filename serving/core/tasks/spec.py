"""`TaskSpec`: the one declaration of a task, and its sampling defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from serving.core.tasks.inputs import OutputSize, TaskInput
from serving.core.tasks.parsers import PARSERS, OutputKind, Parser
from serving.core.tasks.templates import TemplateSet
from serving.engine.params import GenerationParams

#: extra room for generated genes beyond genes x tokens-per-gene (models repeat and drift)
GENE_MARGIN = 0.10
#: tokens a generated cell adds besides its genes: "Cell 12:\n" and ".\n"
TOKENS_PER_CELL_HEADER = 8


class TaskGroup(StrEnum):
    """The model card's three groups of tasks."""

    SINGLE_CELL = "single_cell"
    MULTI_CELL = "multi_cell"
    GENE_SETS = "gene_sets"


@dataclass(frozen=True, slots=True)
class SamplingDefaults:
    """How a task samples unless the caller says otherwise.

    ``max_tokens`` is sized per request by `max_tokens`: the answer's genes times the
    model's measured tokens per gene (plus `GENE_MARGIN`), a few tokens per cell header,
    and ``answer_tokens`` for the label, text or closing ``.``.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    answer_tokens: int = 16

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def max_tokens(self, size: OutputSize, tokens_per_gene: float) -> int:
        """Tokens to allow for an answer of ``size`` with this tokenizer."""
        # round first: 500 x 3.3 x 1.1 is 1815.0000000000002 in floating point
        genes = math.ceil(round(size.genes * tokens_per_gene * (1 + GENE_MARGIN), 6))
        return genes + size.cells * TOKENS_PER_CELL_HEADER + self.answer_tokens

    def params(self, max_tokens: int, **overrides: object) -> GenerationParams:
        """Engine parameters with these defaults, then ``overrides`` on top."""
        values: dict[str, object] = {
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }
        values.update(overrides)
        return GenerationParams(**values)


#: predictions: greedy, stop at EOS (C2S's predict_cell_types_of_data)
GREEDY_LABEL = SamplingDefaults(answer_tokens=48)
#: gene lists recalled, not sampled: greedy
GREEDY_GENES = SamplingDefaults(answer_tokens=16)
#: cell generation as in C2S's tutorials: top_k 50, top_p 0.95
CELL_SAMPLING = SamplingDefaults(temperature=1.0, top_p=0.95, top_k=50, answer_tokens=16)
#: abstracts as in C2S's material: temperature 0.7, top_k 30, top_p 0.9
ABSTRACT_SAMPLING = SamplingDefaults(temperature=0.7, top_p=0.9, top_k=30, answer_tokens=512)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything the stack knows about one task.

    Attributes
    ----------
    name
        Stable snake_case name used by the API, the CLI and template files.
    group
        The model card's group.
    description
        One line for ``c2s tasks`` and the docs.
    input_model
        Pydantic model of the task's input (``extra="forbid"``).
    templates
        Prompt variants and answer template.
    answer_fields
        Placeholders of the answer template.
    output
        What the answer is; picks the parser.
    sampling
        Default sampling settings.
    experimental
        True when no public C2S template set exists for the task (templates written here).
    c2s_name
        The task's name in cell2sentence's prompt formatters, where it has one.
    """

    name: str
    group: TaskGroup
    description: str
    input_model: type[TaskInput]
    templates: TemplateSet
    answer_fields: frozenset[str]
    output: OutputKind
    sampling: SamplingDefaults
    experimental: bool
    c2s_name: str | None = None

    def __post_init__(self) -> None:
        self.templates.check(self.input_model.placeholders, self.answer_fields)

    def render_prompt(self, data: TaskInput, index: int) -> str:
        """Prompt text of template ``index`` filled from a validated input."""
        return self.templates.render_prompt(index, data.template_fields())

    def render_answer(self, values: dict[str, str]) -> str:
        """Answer text from the answer template's values (training data, references)."""
        return self.templates.render_answer(values)

    @property
    def parser(self) -> Parser:
        return PARSERS[self.output]

    def with_templates(self, templates: TemplateSet) -> TaskSpec:
        """This task with another template set (checked against its fields)."""
        return replace(self, templates=templates)
