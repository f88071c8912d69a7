"""Prompt template sets: loading, validation, choice of a variant, and rendering.

A template set has C2S's shape, ``{"model_input": [...], "response": [...]}``: paraphrased
prompt templates and one answer template, filled with ``str.format``. The package ships one
file per task under ``serving/core/tasks/templates/`` (the five public sets are exact copies of
cell2sentence 1.2.0's ``prompts/``); a user may replace a task's set with a file of the same
shape. The text of one template (its placeholders, C2S's cell shapes) is tokenizer_ext's
(`tokenizer_ext.templates`); this module deals in sets of them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from tokenizer_ext.errors import TemplateError
from tokenizer_ext.templates import placeholders

#: choose a variant uniformly at random per request, as C2S does when formatting data
RANDOM = "random"
TemplateChoice = int | Literal["random"]

#: C2S seeds Python's ``random`` with 42 before choosing templates (``random_seed=42``)
C2S_TEMPLATE_SEED = 42


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The prompt variants of one task and its answer template.

    Attributes
    ----------
    model_input
        Prompt templates; index 0 is the default.
    response
        Answer templates; C2S always uses the first.
    source
        Where the set was loaded from, for messages and ``c2s tasks``.
    """

    model_input: tuple[str, ...]
    response: tuple[str, ...]
    source: str = ""

    @property
    def answer(self) -> str:
        """The answer template (C2S uses ``response[0]``)."""
        return self.response[0]

    def __len__(self) -> int:
        return len(self.model_input)

    def check(self, prompt_fields: frozenset[str], answer_fields: frozenset[str]) -> None:
        """Raise `TemplateError` if a template needs a field its task does not fill."""
        for i, template in enumerate(self.model_input):
            extra = placeholders(template) - prompt_fields
            if extra:
                raise TemplateError(
                    f"{self.source}: model_input[{i}] uses {sorted(extra)}; "
                    f"this task fills {sorted(prompt_fields)}"
                )
        extra = placeholders(self.answer) - answer_fields
        if extra:
            raise TemplateError(
                f"{self.source}: response[0] uses {sorted(extra)}; "
                f"this task's answer fills {sorted(answer_fields)}"
            )

    def prompt_template(self, index: int) -> str:
        """The prompt template at ``index``; raises `IndexError` naming the valid range."""
        if not 0 <= index < len(self.model_input):
            raise IndexError(
                f"template index {index} is out of range: this task has "
                f"{len(self.model_input)} templates (0-{len(self.model_input) - 1})"
            )
        return self.model_input[index]

    def render_prompt(self, index: int, fields: dict[str, str]) -> str:
        """Fill prompt template ``index``."""
        return self.prompt_template(index).format(**fields)

    def render_answer(self, fields: dict[str, str]) -> str:
        """Fill the answer template (used to build training data and references)."""
        return self.answer.format(**fields)


def parse_template_set(data: object, source: str) -> TemplateSet:
    """Build a `TemplateSet` from C2S-shaped JSON data, checking its shape."""
    if not isinstance(data, dict) or set(data) != {"model_input", "response"}:
        raise TemplateError(
            f'{source}: expected an object with exactly the keys "model_input" and "response"'
        )
    model_input, response = data["model_input"], data["response"]
    for key, value in (("model_input", model_input), ("response", response)):
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise TemplateError(f"{source}: {key!r} must be a non-empty list of strings")
    return TemplateSet(tuple(model_input), tuple(response), source=source)


def load_template_file(path: str | Path) -> TemplateSet:
    """Load a user's template file (C2S's JSON shape)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TemplateError(f"cannot read template file {path}: {exc}") from exc
    return parse_template_set(data, str(path))


def load_packaged(task: str) -> TemplateSet:
    """Load the template set this package ships for ``task``."""
    resource = resources.files("serving.core.tasks") / "templates" / f"{task}.json"
    data = json.loads(resource.read_text(encoding="utf-8"))
    return parse_template_set(data, f"serving/core/tasks/templates/{task}.json")


class TemplatePicker:
    """Chooses a template index per request: a fixed index, or seeded random like C2S.

    C2S calls ``random.seed(42)`` and then ``random.choice(model_input)`` once per sample;
    a picker made with the same seed draws the same sequence of variants.
    """

    def __init__(self, seed: int = C2S_TEMPLATE_SEED) -> None:
        self._rng = random.Random(seed)

    def pick(self, choice: TemplateChoice, n_templates: int) -> int:
        """The index to use for ``choice`` among ``n_templates`` variants."""
        if choice == RANDOM:
            # same draw as random.choice(seq), which C2S uses
            return self._rng.choice(range(n_templates))
        return int(choice)
