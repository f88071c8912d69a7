"""The outputs step reads the rows batch by batch: its figures and obs columns equal those
made from every row at once (what it did before), and annotated.h5ad gets only new columns."""

from __future__ import annotations

from collections import Counter

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serving.bulk.errors import AnnotateError
from serving.bulk.outputs import write_annotated
from serving.bulk.plan import group_plan, single_cell_plan
from serving.bulk.row_tally import RowTally
from serving.bulk.rows import CellRow, rows_to_table
from serving.bulk.store import ShardStore

LABELS = ["T cell", None, "B cell", "NK", "B cell", "", "T cell", None, "Mono", "NK", "B cell"]


def _rows(labels, *, groups=None, flags=None, scores=None) -> pa.Table:
    rows = []
    for i, label in enumerate(labels):
        empty = label is None and groups is None
        rows.append(
            CellRow(
                row=i,
                cell_id=f"c{i}",
                task="cell_type_prediction",
                status="empty_cell" if empty else ("ok" if label else "no_label"),
                prediction=label,
                prompt_tokens=0 if empty else 100 + i,
                output_tokens=0 if empty else 3 + i % 2,
                finish_reason=None if empty else ("length" if i % 4 == 0 else "stop"),
                model=None if empty else "m",
                group_id=groups[i] if groups else None,
                group_size=Counter(groups)[groups[i]] if groups else None,
                tissue="blood" if groups else None,
                in_label_set=flags[i] if flags else None,
                label_score=scores[i] if scores else None,
            )
        )
    return rows_to_table(rows)


def _tally(table: pa.Table, sources: dict[str, str], batch: int) -> RowTally:
    tally = RowTally(table.num_rows, sources)
    for start in range(0, table.num_rows, batch):
        tally.add(table.slice(start, batch))
    tally.check_complete()
    return tally


@pytest.mark.parametrize("batch", [1, 3, 11])
def test_label_columns_are_the_categoricals_of_all_rows_at_once(batch):
    table = _rows(LABELS)
    column = _tally(table, {"p": "prediction"}, batch).obs_columns()["p"]
    expected = pd.Categorical(LABELS)
    assert list(column.categories) == ["", "B cell", "Mono", "NK", "T cell"]
    assert column.categories.dtype == expected.categories.dtype
    np.testing.assert_array_equal(column.codes, expected.codes)
    assert column.codes.dtype == expected.codes.dtype == np.int8


def test_flags_scores_and_empty_columns_keep_their_types():
    flags = [True, None, False, True, None, False, True, False, True, None, True]
    scores = [0.5, None, 0.25, 1.0, None, 0.0, 0.75, None, 0.5, 0.125, 1.0]
    table = _rows(LABELS, flags=flags, scores=scores)
    sources = {"flag": "in_label_set", "score": "label_score", "tissue": "tissue"}
    columns = _tally(table, sources, 4).obs_columns()
    np.testing.assert_array_equal(columns["flag"], [bool(f) for f in flags])
    assert columns["flag"].dtype == bool
    expected = [np.nan if s is None else s for s in scores]
    np.testing.assert_array_equal(columns["score"], expected)
    assert columns["score"].dtype == np.float64
    # no cell has a tissue: an all-missing categorical, as pd.Categorical makes it
    assert len(columns["tissue"].categories) == 0 and (columns["tissue"].codes == -1).all()
    assert len(columns["tissue"]) == len(LABELS)


def test_report_figures_equal_those_of_all_rows_at_once():
    flags = [True, None, False, True, None, False, True, False, True, None, True]
    tally = _tally(_rows(LABELS, flags=flags), {}, 3)
    answered = [i for i, label in enumerate(LABELS) if label is not None]
    prompt = [100 + i for i in answered]
    assert tally.token_totals() == {
        "requests": len(answered),
        "prompt": sum(prompt),
        "output": sum(3 + i % 2 for i in answered),
        "mean_prompt": float(np.mean(prompt)),
        "max_prompt": max(prompt),
        "cut_by_max_tokens": sum(1 for i in answered if i % 4 == 0),
    }
    # most_common breaks ties by first appearance, as a Counter of every row does
    expected = Counter(p for p in LABELS if p).most_common(3)
    assert tally.predictions.most_common(3) == expected == [("B cell", 3), ("T cell", 2), ("NK", 2)]
    assert dict(tally.statuses) == {"ok": 8, "empty_cell": 2, "no_label": 1}
    assert tally.models == {"m"}
    member, scores = tally.label_set_values()
    assert member.tolist() == [f for f in flags if f is not None] and len(scores) == 0


def test_groups_count_one_request_each_even_when_their_cells_lie_apart():
    groups = ["a", "b", "a", "c", "b", "a", "c", "d", "d", "b", "a"]
    labels = ["x"] * len(groups)
    tally = _tally(_rows(labels, groups=groups), {"g": "group_id"}, 2)
    assert tally.requests == 4
    assert tally.token_totals()["prompt"] == 100 + 101 + 103 + 107  # each group's first row
    assert tally.group_size_array().tolist() == [2, 2, 3, 4]
    assert dict(tally.tissues) == {"blood": 4}
    assert list(tally.obs_columns()["g"].categories) == ["a", "b", "c", "d"]


def test_a_missing_or_repeated_row_stops_the_outputs():
    table = _rows(LABELS)
    tally = RowTally(table.num_rows, {})
    tally.add(table.slice(0, 4))
    with pytest.raises(AnnotateError, match="rows 4-6 of 11 cells exactly once"):
        tally.add(table.slice(3, 3))
    short = RowTally(table.num_rows + 1, {})
    short.add(table)
    with pytest.raises(AnnotateError, match="hold 11 rows for 12 cells"):
        short.check_complete()


def test_ordered_batches_cover_single_cell_and_group_plans(tmp_path):
    table = _rows(LABELS)
    store = ShardStore(tmp_path)
    store.shards_dir.mkdir(parents=True)
    plan = single_cell_plan(len(LABELS), 2)
    for shard in plan.shards:
        store.commit(shard.index, table.take(shard.rows))
    batches = list(store.iter_ordered_rows(plan, 5))
    assert [b.num_rows for b in batches] == [6, 5]  # whole shards until 5 rows are held
    assert pa.concat_tables(batches).equals(table)
    groups = np.array(["a", "b", "a", "c", "b", "a", "c", "d", "d", "b", "a"])
    grouped = group_plan(groups, 2, 3, np.zeros(0, dtype=np.int64))
    store = ShardStore(tmp_path / "groups")
    store.shards_dir.mkdir(parents=True)
    for shard in grouped.shards:
        store.commit(shard.index, table.take(shard.rows))
    batches = list(store.iter_ordered_rows(grouped, 4))
    assert [b.num_rows for b in batches] == [4, 4, 3]
    assert pa.concat_tables(batches).equals(table)


def test_annotated_copy_gets_new_columns_and_replaces_its_own(tmp_path):
    source = tmp_path / "in.h5ad"
    obs = pd.DataFrame(
        {"kind": pd.Categorical(["u", "v", "u"]), "c2s": [1.0, 2.0, 3.0]},
        index=["x", "y", "z"],
    )
    ad.AnnData(np.ones((3, 2), dtype=np.float32), obs=obs).write_h5ad(source)
    columns = {"c2s": pd.Categorical(["B", None, "T"]), "c2s_flag": np.array([True, False, True])}
    write_annotated(source, tmp_path / "out.h5ad", columns, {"model": "m", "none": None})
    annotated = ad.read_h5ad(tmp_path / "out.h5ad")
    assert list(annotated.obs.columns) == ["kind", "c2s", "c2s_flag"]
    assert list(annotated.obs_names) == ["x", "y", "z"]
    assert annotated.obs["kind"].tolist() == ["u", "v", "u"]
    assert annotated.obs["c2s"].cat.categories.tolist() == ["B", "T"]
    assert annotated.obs["c2s"].isna().tolist() == [False, True, False]
    assert annotated.obs["c2s_flag"].tolist() == [True, False, True]
    assert dict(annotated.uns["c2s_annotation"]) == {"model": "m"}
    np.testing.assert_array_equal(annotated.X, np.ones((3, 2)))
    with h5py.File(tmp_path / "out.h5ad") as file:
        assert file["obs"].attrs["encoding-type"] == "dataframe"


def test_large_buffers_are_returned_unless_the_environment_says_otherwise(monkeypatch):
    from serving.bulk.heap import return_large_buffers, share_heaps

    assert return_large_buffers() is True  # Linux with glibc, as the development machine
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert return_large_buffers() is False
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert share_heaps() is False


HEAPS_BEFORE_AND_AFTER_THREADS = """
import ctypes, sys, tempfile, threading
from serving.bulk.heap import share_heaps

def heaps():
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile() as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        return open(out.name).read().count("<heap nr=")

before = heaps()
if sys.argv[1] == "shared":
    assert share_heaps(before)
barrier = threading.Barrier(4)
def allocate():
    kept = [bytearray(200_000) for _ in range(5)]  # glibc malloc, in this thread's arena
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(heaps() - before)
"""


def python_output(script: str, *args: str) -> str:
    """What ``script`` prints in a fresh interpreter, without the malloc variables of
    this environment."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    ).stdout


@pytest.mark.parametrize("mode, new_heaps", [("shared", 0), ("default", 4)])
def test_the_bulk_runs_threads_share_their_heaps(mode, new_heaps):
    # glibc's default gives each thread that allocates a heap (arena) of its own
    assert int(python_output(HEAPS_BEFORE_AND_AFTER_THREADS, mode)) == new_heaps


FREED_THEN_TRIMMED = """
import ctypes
from serving.bulk.heap import trim_heap

def resident_heap_mib():
    status = open("/proc/self/status").read().splitlines()
    return int(next(l for l in status if l.startswith("RssAnon")).split()[1]) // 1024

malloc, free = ctypes.CDLL(None).malloc, ctypes.CDLL(None).free
malloc.restype = ctypes.c_void_p
blocks = [malloc(4096) for _ in range(50_000)]  # 200 MiB of small blocks, in the heap
for block in blocks:
    ctypes.memset(block, 1, 4096)
kept = malloc(4096)  # above them all: the heap's top cannot shrink on its own
for block in blocks:
    free(ctypes.c_void_p(block))
freed = resident_heap_mib()
assert trim_heap()
print(freed, resident_heap_mib())
"""


def test_trimming_hands_freed_heap_pages_back():
    freed, trimmed = map(int, python_output(FREED_THEN_TRIMMED).split())
    # freed, the 200 MiB stay resident until trimmed
    assert freed - trimmed > 150


def test_answering_runs_the_collector_less_often_and_restores_it():
    import asyncio
    import gc

    from serving.bulk.answer import answer_as_read
    from serving.bulk.heap import BULK_GC_THRESHOLD

    before = gc.get_threshold()
    seen = []

    async def answer(ready) -> None:
        seen.append(gc.get_threshold())

    class Ready:
        class shard:
            n_cells = 1

    shards = (ready for ready in [Ready(), Ready()])
    asyncio.run(answer_as_read(shards, answer, max_inflight_cells=4))
    assert seen == [(BULK_GC_THRESHOLD, *before[1:])] * 2
    assert gc.get_threshold() == before


def test_recording_progress_leaves_no_garbage_for_the_collector(tmp_path, monkeypatch):
    import gc
    import json

    import serving.bulk.store as shards

    monkeypatch.setattr(shards, "PROGRESS_INTERVAL_S", 0.0)  # every record written
    # the bulk run collects cycles rarely: a commit must not leave any (an indenting JSON
    # encoder did, one per shard)
    store = ShardStore(tmp_path)
    store.shards_dir.mkdir(parents=True)
    plan = single_cell_plan(1000, 10)
    gc.collect()
    gc.disable()
    try:
        for shard in range(100):
            store.record_progress(range(shard + 1), plan)
        assert gc.collect() == 0
    finally:
        gc.enable()
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["done_shards"] == 100 and progress["finished"]
    assert progress["shards"] == list(range(100))


def test_the_progress_record_is_rewritten_at_most_twice_a_second_and_when_finished(
    tmp_path, monkeypatch
):
    import json

    import serving.bulk.store as shards

    clock = [1000.0]
    monkeypatch.setattr(shards.time, "monotonic", lambda: clock[0])
    store = ShardStore(tmp_path)
    plan = single_cell_plan(40, 10)  # 4 shards

    def recorded() -> int:
        return json.loads((tmp_path / "progress.json").read_text())["done_shards"]

    store.record_progress(set(), plan)  # the first record is always written
    store.record_progress({0}, plan)
    assert recorded() == 0
    clock[0] += shards.PROGRESS_INTERVAL_S
    store.record_progress({0, 1}, plan)
    assert recorded() == 2
    store.record_progress({0, 1, 2, 3}, plan)  # finished: written at once
    assert recorded() == 4
