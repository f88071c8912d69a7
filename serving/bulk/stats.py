"""`RunStats`: the timings and counts of one invocation of a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.bulk.sizing import GroupSize


@dataclass(frozen=True)
class RunStats:
    """What this invocation did (a resumed run counts only its own cells).

    Attributes
    ----------
    elapsed_s
        From start to the last shard committed (outputs excluded).
    annotated_cells
        Cells answered by this invocation.
    resumed_cells
        Cells found committed by earlier invocations.
    group_size
        The multi-cell group size chosen, if any.
    """

    elapsed_s: float
    annotated_cells: int
    resumed_cells: int
    group_size: GroupSize | None = None

    @property
    def cells_per_s(self) -> float:
        return self.annotated_cells / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "annotated_cells": self.annotated_cells,
            "resumed_cells": self.resumed_cells,
            "cells_per_s": round(self.cells_per_s, 3),
        }
