"""The task registry: one declaration per C2S task, with templates, parsers and sampling.

Use ``default_registry().get("cell_type_prediction")`` to reach a task's input model,
templates, parser and sampling defaults; `serving.core.prompt_builder.PromptBuilder` and
`serving.core.stages.Decoder` build on it.
"""

from serving.core.tasks.inputs import ExpressionCell, OutputSize, TaskInput
from serving.core.tasks.parsers import OutputKind
from serving.core.tasks.registry import TaskRegistry, default_registry
from serving.core.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TaskResult,
    TextResult,
)
from serving.core.tasks.spec import SamplingDefaults, TaskGroup, TaskSpec
from serving.core.tasks.templates import RANDOM, TemplateChoice, TemplateError, TemplateSet

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
