"""``c2s tasks`` and ``c2s prompt``: list the tasks, and show the exact prompt of a request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table

from serving.core.errors import InvalidRequest
from serving.core.tasks import TaskRegistry, TaskSpec, TemplateError, default_registry
from serving.ray_serve.config import DEMO_MODEL_DIR


def describe_field(name: str, field: FieldInfo) -> str:
    """``name`` for a required input field, ``name=default`` for an optional one."""
    return name if field.is_required() else f"{name}={field.default!r}"


def describe_inputs(spec: TaskSpec) -> str:
    """The task's input fields, one per line: required ones first."""
    fields = sorted(spec.input_model.model_fields.items(), key=lambda f: not f[1].is_required())
    return "\n".join(describe_field(n, f) for n, f in fields)


def tasks_table(registry: TaskRegistry) -> Table:
    """A table of every task with its inputs, answer kind and templates."""
    table = Table(title="C2S tasks", show_lines=True)
    for column in ("task", "group", "inputs", "output", "templates", "status"):
        table.add_column(column, no_wrap=column in ("task", "inputs"))
    for spec in registry:
        table.add_row(
            spec.name,
            spec.group.value,
            describe_inputs(spec),
            spec.output.value,
            str(len(spec.templates)),
            "experimental" if spec.experimental else f"C2S: {spec.c2s_name}",
        )
    return table


def tasks() -> None:
    """List the tasks with their inputs, answer kinds and template counts."""
    Console(width=200).print(tasks_table(default_registry()))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def prompt(
    task: Annotated[str, typer.Argument(help="Task name (see `c2s tasks`)")],
    input_file: Annotated[Path, typer.Option("--input", help="JSON file holding the task's input")],
    template_index: Annotated[int, typer.Option(help="Prompt variant (0 is the default)")] = 0,
    model: Annotated[
        Path, typer.Option(help="Checkpoint directory whose tokenizer counts the tokens")
    ] = DEMO_MODEL_DIR,
    templates: Annotated[
        Path | None,
        typer.Option(help='Template file replacing the task\'s ({"model_input", "response"})'),
    ] = None,
) -> None:
    """Print the exact prompt of a task input, then its token count."""
    from serving.core.prompt_builder import PromptBuilder

    try:
        payload = json.loads(input_file.read_text("utf-8"))
        registry = default_registry()
        if templates is not None:
            registry = registry.with_templates({task: templates})
        builder = PromptBuilder.from_model(model, registry=registry)
        built = builder.build(task, payload, template_index)
    except (OSError, json.JSONDecodeError, TemplateError, InvalidRequest) as exc:
        raise _fail(str(exc)) from None
    n_templates = len(builder.registry.get(task).templates)
    typer.echo(built.text)
    typer.echo(
        f"--- {built.prompt_tokens} prompt tokens (template {built.template_index} of "
        f"{n_templates}, tokenizer of {model.name}, max_tokens {built.max_tokens})"
    )
