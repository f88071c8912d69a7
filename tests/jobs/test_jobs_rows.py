"""Shard rows are typed: a missing, unknown or mistyped column fails where it is made."""

from __future__ import annotations

import pyarrow as pa
import pytest

from serving.bulk.rows import ROW_COLUMNS, ROW_SCHEMA, CellRow, rows_to_table


def test_the_row_type_and_the_parquet_schema_have_the_same_columns():
    assert sorted(ROW_COLUMNS) == sorted(ROW_SCHEMA.names)


def test_rows_become_a_table_in_schema_order():
    rows = [
        CellRow(row=0, cell_id="a", task="cell_type_prediction", status="ok", prediction="T"),
        CellRow(row=1, cell_id="b", task="cell_type_prediction", status="empty_cell"),
    ]
    table = rows_to_table(rows)
    assert table.schema.equals(ROW_SCHEMA)
    assert table.column("prediction").to_pylist() == ["T", None]
    assert table.column("raw_text").to_pylist() == ["", ""]
    assert table.column("group_size").null_count == 2


def test_a_mistyped_or_missing_column_is_an_error_not_a_null_column():
    with pytest.raises(TypeError, match="predicton"):
        CellRow(row=0, cell_id="a", task="t", status="ok", predicton="T")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="status"):
        CellRow(row=0, cell_id="a", task="t")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="CellRow"):
        rows_to_table([{"row": 0, "cell_id": "a"}])  # type: ignore[list-item]


def test_a_value_of_the_wrong_type_fails_on_write():
    bad = CellRow(row=0, cell_id="a", task="t", status="ok", prompt_tokens="many")  # type: ignore[arg-type]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        rows_to_table([bad])
