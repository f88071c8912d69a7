"""What the outputs need from a run's rows, gathered batch by batch in input order.

A finished run's rows are read shard by shard (`serving.bulk.store.ShardStore.
iter_ordered_rows`), never all at once: for a million cells, Python lists of every row's
values would take more memory than the whole answering phase. `RowTally` keeps only
counts, sums and one compact array per ``obs`` column (a category code per cell), and
gives the same report figures and ``obs`` columns as the rows taken whole would.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving.bulk.errors import AnnotateError


class ObsColumn:
    """One ``annotated.h5ad`` ``obs`` column filled batch by batch: labels become a
    categorical (categories sorted, as ``pd.Categorical`` makes them), flags booleans (a
    missing flag is False: h5ad holds no nullable booleans) and numbers floats (missing:
    NaN); a column with no value at all is an empty categorical."""

    def __init__(self, n_cells: int, kind: pa.DataType) -> None:
        self.kind = "flag" if pa.types.is_boolean(kind) else "label"
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            self.kind = "number"
        dtype = {"flag": bool, "number": np.float64, "label": np.int32}[self.kind]
        self.values = np.empty(n_cells, dtype=dtype)
        self.labels: dict[str, int] = {}  # label -> provisional code, in order of arrival
        self.present = 0
        self.filled = 0

    def add(self, column: pa.ChunkedArray) -> None:
        stop = self.filled + len(column)
        self.present += len(column) - column.null_count
        if self.kind == "flag":
            self.values[self.filled : stop] = column.fill_null(False).to_numpy()
        elif self.kind == "number":
            self.values[self.filled : stop] = column.cast(pa.float64()).to_numpy()
        else:
            encoded = pc.dictionary_encode(column.combine_chunks())
            labels = encoded.dictionary.to_pylist()
            codes = [self.labels.setdefault(label, len(self.labels)) for label in labels]
            provisional = np.asarray([*codes, -1], dtype=np.int32)
            local = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            self.values[self.filled : stop] = provisional[local]
        self.filled = stop

    def finish(self) -> np.ndarray | pd.Categorical:
        """The column as ``annotated.h5ad`` stores it."""
        if self.present == 0:
            return pd.Categorical(np.full(self.filled, None, dtype=object))
        if self.kind != "label":
            return self.values
        names = sorted(self.labels)
        final = np.empty(len(names) + 1, dtype=np.int64)
        final[[self.labels[n] for n in names]] = np.arange(len(names))
        final[-1] = -1
        return pd.Categorical.from_codes(final[self.values], categories=pd.Index(names))

    def labels_per_cell(self) -> list[str | None]:
        """Each cell's label (None where it has none): for the accuracy and the UMAP."""
        by_code = [None] * (len(self.labels) + 1)
        for label, code in self.labels.items():
            by_code[code] = label
        return [by_code[c] for c in self.values.tolist()]


#: the row columns `RowTally` counts requests from
_REQUEST_COLUMNS = (
    "group_id",
    "group_size",
    "tissue",
    "prompt_tokens",
    "output_tokens",
    "finish_reason",
)


class RowTally:
    """Counts, sums and ``obs`` columns of a run's rows, fed in input order.

    Parameters
    ----------
    n_cells
        The input's rows; `add` checks that batches hold exactly these, in order.
    obs_sources
        ``obs`` column name -> the row column it is made of.
    """

    def __init__(self, n_cells: int, obs_sources: dict[str, str]) -> None:
        self.n_cells = n_cells
        self.obs_sources = obs_sources
        self.obs: dict[str, ObsColumn] = {}
        self.next_row = 0
        self.predictions: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.models: set[str] = set()
        self.requests = 0
        self.prompt_tokens: list[int] = []  # one total per batch: summed at the end
        self.output_tokens: list[int] = []
        self.max_prompt = 0
        self.cut_by_max_tokens = 0
        self.group_sizes: Counter[int] = Counter()
        self.tissues: Counter[str] = Counter()
        self._groups_seen: set[str] = set()
        self.in_label_set: list[np.ndarray] = []
        self.label_scores: list[np.ndarray] = []

    def add(self, rows: pa.Table) -> None:
        """Take the next rows (a table of `serving.bulk.rows.ROW_SCHEMA`, in row order)."""
        found = rows.column("row").to_numpy()
        if not np.array_equal(found, np.arange(self.next_row, self.next_row + len(found))):
            raise AnnotateError(
                f"The shards do not hold rows {self.next_row}-{self.next_row + len(found) - 1} "
                f"of {self.n_cells} cells exactly once; rerun with --overwrite."
            )
        self.next_row += len(found)
        for name, source in self.obs_sources.items():
            if name not in self.obs:
                self.obs[name] = ObsColumn(self.n_cells, rows.schema.field(source).type)
            self.obs[name].add(rows.column(source))
        self.predictions.update(
            {p: n for p, n in _value_counts(rows.column("prediction")).items() if p}
        )
        self.statuses.update(_value_counts(rows.column("status")))
        self.models.update(m for m in _value_counts(rows.column("model")) if m)
        self._add_requests(rows)
        for column, kept in (
            ("in_label_set", self.in_label_set),
            ("label_score", self.label_scores),
        ):
            present = rows.column(column).drop_null()
            if len(present):
                kept.append(present.to_numpy())

    def _add_requests(self, rows: pa.Table) -> None:
        """One request per answered cell, or per group (the group's first cell)."""
        # only the columns counted here: filtering the whole batch would copy all of it
        answered = rows.select(_REQUEST_COLUMNS)
        empty = pc.equal(rows.column("status"), "empty_cell")
        if pc.any(empty).as_py():
            answered = answered.filter(pc.invert(empty))
        if answered.num_rows and answered.column("group_id").null_count < answered.num_rows:
            first = []
            for i, group in enumerate(answered.column("group_id").to_pylist()):
                if group not in self._groups_seen:  # a group's cells may lie far apart
                    first.append(i)
                    self._groups_seen.add(group)
            answered = answered.take(pa.array(first, type=pa.int64()))
            self.group_sizes.update(answered.column("group_size").to_pylist())
            self.tissues.update(t for t in answered.column("tissue").to_pylist() if t)
        if not answered.num_rows:
            return
        prompt = answered.column("prompt_tokens").to_numpy().astype(np.int64)
        self.requests += answered.num_rows
        self.prompt_tokens.append(int(prompt.sum()))
        self.output_tokens.append(int(pc.sum(answered.column("output_tokens")).as_py() or 0))
        self.max_prompt = max(self.max_prompt, int(prompt.max()))
        self.cut_by_max_tokens += int(
            pc.sum(pc.equal(answered.column("finish_reason"), "length")).as_py() or 0
        )

    def check_complete(self) -> None:
        """Raise `AnnotateError` unless every input row arrived."""
        if self.next_row != self.n_cells:
            raise AnnotateError(
                f"The shards hold {self.next_row} rows for {self.n_cells} cells; "
                "rerun with --overwrite."
            )

    def obs_columns(self) -> dict[str, Any]:
        """The ``obs`` columns ``annotated.h5ad`` receives."""
        return {name: column.finish() for name, column in self.obs.items()}

    def token_totals(self) -> dict[str, Any]:
        """Prompt and output tokens of the requests, and answers cut by ``max_tokens``."""
        prompt = sum(self.prompt_tokens)
        return {
            "requests": self.requests,
            "prompt": prompt,
            "output": sum(self.output_tokens),
            "mean_prompt": prompt / self.requests if self.requests else 0.0,
            "max_prompt": self.max_prompt,
            "cut_by_max_tokens": self.cut_by_max_tokens,
        }

    def group_size_array(self) -> np.ndarray:
        """Every group's size, sorted."""
        sizes = sorted(self.group_sizes.items())
        return np.repeat([s for s, _ in sizes], [n for _, n in sizes]).astype(np.int64)

    def label_set_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The in-set flags and top-label scores of the cells that have them."""
        return tuple(
            np.concatenate(kept) if kept else np.zeros(0)
            for kept in (self.in_label_set, self.label_scores)
        )


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    """Counts of the column's non-null values."""
    counts = pc.value_counts(column.drop_null())
    values, numbers = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    return dict(zip(values, numbers, strict=True))
