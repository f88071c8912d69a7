"""One row per cell: the typed row, how an answer becomes one, and the Parquet schema.

Rows are `CellRow`s, not dicts, so a mistyped or missing column is a ``TypeError`` where
the row is made; `rows_to_table` writes them with `ROW_SCHEMA`, which checks every value's
type. A test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa

from serving.bulk.runners import Answer

#: one ranked label of a scored run
TOP_LABEL = pa.struct(
    [("label", pa.string()), ("probability", pa.float64()), ("logprob", pa.float64())]
)
#: one row per cell; group columns are null in single-cell runs
ROW_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("cell_id", pa.string()),
        ("prediction", pa.string()),
        ("raw_text", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("output_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("task", pa.string()),
        ("template_index", pa.int16()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("group_id", pa.string()),
        ("group_size", pa.int16()),
        ("tissue", pa.string()),
        ("tissue_raw_text", pa.string()),
        # label-set runs: whether the label is in the set; scored runs: the top labels
        ("in_label_set", pa.bool_()),
        ("label_score", pa.float64()),
        ("top_labels", pa.list_(TOP_LABEL)),
    ]
)


@dataclass(frozen=True, slots=True)
class CellRow:
    """A cell's answer as written to its shard (columns of `ROW_SCHEMA`).

    ``status`` is ``ok``, ``no_label`` (answered without a usable label) or ``empty_cell``
    (no expressed gene: no prompt was sent).
    """

    row: int
    cell_id: str
    task: str
    status: str
    prediction: str | None = None
    raw_text: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    template_index: int | None = None
    model: str | None = None
    group_id: str | None = None
    group_size: int | None = None
    tissue: str | None = None
    tissue_raw_text: str | None = None
    in_label_set: bool | None = None
    label_score: float | None = None
    top_labels: list[dict[str, Any]] | None = None


ROW_COLUMNS = tuple(f.name for f in fields(CellRow))


def rows_to_table(rows: Sequence[CellRow]) -> pa.Table:
    """A shard's rows as a table; a value of the wrong type raises here, not in a reader."""
    for row in rows:
        if not isinstance(row, CellRow):
            raise TypeError(f"a shard row must be a CellRow, not {type(row).__name__}")
    columns = {name: [getattr(row, name) for row in rows] for name in ROW_SCHEMA.names}
    return pa.table(columns, schema=ROW_SCHEMA)


@dataclass(frozen=True)
class GroupFacts:
    """The group a cell was asked in, and the group's tissue answer."""

    name: str
    size: int
    tissue: Answer | None


def cell_row(
    row: int,
    cell_id: str,
    task: str,
    answer: Answer,
    prediction: str | None,
    position: int | None = None,
    group: GroupFacts | None = None,
) -> CellRow:
    """The row of a cell answered by ``answer`` (at ``position`` of ``group``'s answer)."""
    return CellRow(
        row=row,
        cell_id=cell_id,
        task=task,
        status="ok" if prediction else "no_label",
        prediction=prediction,
        raw_text=answer.text,
        prompt_tokens=answer.prompt_tokens,
        output_tokens=answer.output_tokens,
        finish_reason=answer.finish_reason,
        template_index=answer.template_index,
        model=answer.model,
        **label_columns(answer.result, position),
        **(group_columns(group) if group else {}),
    )


def label_columns(result: Mapping[str, Any], position: int | None = None) -> dict[str, Any]:
    """A cell's label-set columns: whether its label is in the set and, when labels were
    scored, the top labels and the first one's probability (``position``: the cell's
    place in a group's answer)."""
    member = result.get("in_label_set")
    scores = result.get("label_scores")
    if position is not None:
        member = member[position] if member and position < len(member) else None
        scores = scores[position] if scores and position < len(scores) else None
    return {
        "in_label_set": member,
        "label_score": scores[0]["probability"] if scores else None,
        "top_labels": scores,
    }


def group_columns(group: GroupFacts) -> dict[str, Any]:
    """The columns every cell of a group shares: the group and its tissue answer."""
    return {
        "group_id": group.name,
        "group_size": group.size,
        "tissue": group.tissue.result.get("label") if group.tissue else None,
        "tissue_raw_text": group.tissue.text if group.tissue else None,
    }


def empty_row(row: int, cell_id: str, task: str) -> CellRow:
    """The row of a cell without expressed genes: no prompt, no prediction."""
    return CellRow(row=row, cell_id=cell_id, task=task, status="empty_cell")
