"""The task registry: one declaration per C2S task, with templates, parsers and sampling.

Use ``default_registry().get("cell_type_prediction")`` to reach a task's input model,
templates, parser and sampling defaults; `serving.prompt_builder.PromptBuilder` and
`serving.decoder.Decoder` build on it.
"""

from serving.tasks.inputs import ExpressionCell, OutputSize, TaskInput
from serving.tasks.parsers import OutputKind
from serving.tasks.registry import TaskRegistry, default_registry
from serving.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TaskResult,
    TextResult,
)
from serving.tasks.spec import SamplingDefaults, TaskGroup, TaskSpec
from serving.tasks.templates import RANDOM, TemplateChoice, TemplateError, TemplateSet

__all__ = [
    "RANDOM",
    "AlphabeticalGenesResult",
    "CellGenesResult",
    "CellLabelsResult",
    "ExpressionCell",
    "GeneListResult",
    "LabelResult",
    "OutputKind",
    "OutputSize",
    "SamplingDefaults",
    "TaskGroup",
    "TaskInput",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "TemplateChoice",
    "TemplateError",
    "TemplateSet",
    "TextResult",
    "default_registry",
]
