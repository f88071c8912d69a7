"""Progress of a run: a listener protocol, a silent one, and a rich progress bar."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class ProgressListener(Protocol):
    """Told the total, the cells already done (a resumed run), and each commit."""

    def start(self, total_cells: int, done_cells: int) -> None: ...

    def advance(self, cells: int) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, total_cells: int, done_cells: int) -> None:
        pass

    def advance(self, cells: int) -> None:
        pass

    def stop(self) -> None:
        pass


class CellsPerSecondColumn(ProgressColumn):
    """Cells per second over rich's recent samples (this run's cells only)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- cells/s" if speed is None else f"{speed:,.1f} cells/s", style="cyan")


class RichProgress:
    """A progress bar on stderr: cells done, cells/s, elapsed and time left.

    Parameters
    ----------
    console
        Where to draw; stderr by default so stdout stays for results.
    description
        The bar's label.
    """

    def __init__(self, console: Console | None = None, description: str = "annotating") -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            CellsPerSecondColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            # a shard lands every few seconds: average over a window that spans several
            speed_estimate_period=60,
        )
        self._description = description
        self._task = None

    def start(self, total_cells: int, done_cells: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            self._description, total=total_cells, completed=done_cells
        )

    def advance(self, cells: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, cells)

    def stop(self) -> None:
        self._progress.stop()
