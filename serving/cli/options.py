"""Options and the progress bar shared by the commands that read an ``.h5ad`` file
(``c2s annotate``, ``c2s embed``): one definition, one help text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from serving.bulk.progress import NullProgress, ProgressListener, RichProgress
from serving.core.errors import C2SError

console = Console(stderr=True)
#: the commands' own report lines, one line per message: off a terminal rich would wrap them
#: at 80 columns, breaking paths in logs and CI output
report_console = Console(soft_wrap=True)

Model = Annotated[
    str | None,
    typer.Option(help="Checkpoint directory or Hugging Face id [default: C2S_MODEL, demo]"),
]
RayApp = Annotated[str, typer.Option(help="Name of the Ray Serve application")]
UseRaw = Annotated[bool, typer.Option("--use-raw", help="Read .raw.X")]
Layer = Annotated[str | None, typer.Option(help="Read this layer instead of X")]
GeneSymbolsColumn = Annotated[
    str | None, typer.Option(help="var column with gene symbols (when var_names are ids)")
]
OrganismOption = Annotated[
    str | None, typer.Option(help="'Homo sapiens' or 'Mus musculus' [default: guessed]")
]
KvCacheGib = Annotated[int, typer.Option(help="KV cache of the CPU engine, GiB")]
ShowProgress = Annotated[bool, typer.Option(help="Show the progress bar")]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", help="vLLM and Ray logs on the terminal, not in the log file"),
]


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def invalid_config(exc: ValidationError) -> typer.Exit:
    """`fail` with the first error of a config built from the flags."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return fail(f"{where}: {message}" if where else message)


@contextmanager
def progress_bar(show: bool = True) -> Iterator[ProgressListener]:
    """A run's progress listener (a rich bar, or none); the core's errors raised inside
    become a message and exit 2."""
    try:
        yield RichProgress(console) if show else NullProgress()
    except C2SError as exc:
        raise fail(exc.message) from None
