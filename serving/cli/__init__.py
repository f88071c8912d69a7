"""The ``c2s`` command line: a thin shell that assembles one module per command.

Each command lives in ``serving/cli/<name>.py`` as a plain function; this module only
registers them, so adding one (serve, annotate, demo, bench) is one import and one line.
"""

from __future__ import annotations

import typer

from serving.cli import annotate as annotate_command
from serving.cli import demo as demo_command
from serving.cli import embed as embed_command
from serving.cli import serve as serve_command
from serving.cli import tasks as tasks_commands

app = typer.Typer(
    name="c2s",
    help="Serve Cell2Sentence (C2S) models: tasks, prompts, serving and bulk annotation.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("tasks")(tasks_commands.tasks)
app.command("prompt")(tasks_commands.prompt)
app.command("serve")(serve_command.serve)
app.command("annotate")(annotate_command.annotate)
app.command("embed")(embed_command.embed)
app.command("demo")(demo_command.demo)
