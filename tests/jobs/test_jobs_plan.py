"""Pure pieces of the job: shard plans, group splitting and sizing, assembly, flow, scores."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.bulk.accuracy import score_labels
from serving.bulk.answer import InflightCells, first_error
from serving.bulk.cells import ReadyShard, ShardAssembler
from serving.bulk.plan import group_plan, group_units, single_cell_plan, split_evenly
from serving.bulk.sizing import fit_group_size
from tokenizer_ext import GeneVocabulary, RankedCells, RankedChunk


def check_covers_every_row(plan) -> None:
    """Raise `AssertionError` unless every row is in exactly one shard."""
    rows = np.concatenate([s.rows for s in plan.shards]) if plan.shards else np.zeros(0)
    if len(rows) != plan.n_cells or not np.array_equal(np.sort(rows), np.arange(plan.n_cells)):
        raise AssertionError("the shard plan does not hold every row exactly once")


def test_single_cell_plan_covers_rows_in_order():
    plan = single_cell_plan(10, 4)
    assert [s.rows.tolist() for s in plan.shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(len(s.units()) == s.n_cells for s in plan.shards)
    check_covers_every_row(plan)


@pytest.mark.parametrize("n", [1, 5, 19, 20, 21, 41, 100])
def test_split_evenly_respects_the_maximum_with_sizes_within_one(n):
    parts = split_evenly(np.arange(n), 20)
    sizes = [len(p) for p in parts]
    assert max(sizes) <= 20 and max(sizes) - min(sizes) <= 1
    assert np.concatenate(parts).tolist() == list(range(n))


def test_groups_keep_row_order_and_never_mix_values():
    groups = np.array(["a", "b", "a", "b", "a", "c"] * 10)
    units = group_units(groups, 7, skip_rows=np.array([5], dtype=np.int64))
    seen = np.concatenate([rows for _, rows in units])
    assert sorted(seen.tolist()) == list(range(60))
    for name, rows in units:
        if name:
            assert len(set(groups[rows])) == 1 and name.startswith(groups[rows[0]] + "#")
            assert rows.tolist() == sorted(rows.tolist()) and len(rows) <= 7
    assert ("", [5]) in [(n, r.tolist()) for n, r in units]


def test_group_plan_packs_whole_groups_ordered_by_last_row():
    groups = np.array([f"g{i % 4}" for i in range(80)])
    plan = group_plan(groups, 6, 12, np.zeros(0, dtype=np.int64))
    check_covers_every_row(plan)
    last_rows = [int(u[-1]) for s in plan.shards for u in s.units()]
    assert last_rows == sorted(last_rows)
    assert all(s.n_cells >= 12 for s in plan.shards[:-1])
    assert plan.group_size == 6


def test_group_size_is_the_largest_that_fits():
    size = fit_group_size(lambda n: 100 + 300 * n, lambda n: 48 + 8 * n, 4096, 20, exact=True)
    assert size.cells == 12 and size.worst_prompt_tokens + size.reserved_output_tokens <= 4096
    assert fit_group_size(lambda n: 5000 * n, lambda n: 0, 4096, 20, exact=False) is None


VOCABULARY = GeneVocabulary([f"G{r}" for r in range(20)])


def chunk(start: int, stop: int) -> RankedChunk:
    """Rows whose one gene is ``G<row>``."""
    names = np.array([f"c{r}" for r in range(start, stop)])
    ranked = RankedCells(np.arange(start, stop, dtype=np.int32), np.arange(stop - start + 1))
    return RankedChunk(start, stop, names, ranked, VOCABULARY)


def test_assembler_releases_complete_shards_and_skips_committed_ones():
    plan = group_plan(np.array(["x", "y"] * 10), 5, 5, np.zeros(0, dtype=np.int64))
    assembler = ShardAssembler(plan, skip={0})
    ready: list[ReadyShard] = []
    for start in range(0, 20, 3):
        ready += assembler.add(chunk(start, min(start + 3, 20)))
    assert not assembler.pending and not assembler.cells
    assert sorted(r.shard.index for r in ready) == list(range(1, len(plan.shards)))
    for r in ready:
        assert r.names == [f"c{row}" for row in r.shard.rows]
        assert r.sentences == [f"G{row}" for row in r.shard.rows]


async def test_inflight_cells_cap_and_oversized_batches():
    flow = InflightCells(10)
    await flow.acquire(6)
    waiter = asyncio.create_task(flow.acquire(6))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await flow.release(6)
    await asyncio.wait_for(waiter, 1)
    await flow.release(6)
    await asyncio.wait_for(flow.acquire(50), 1)  # alone, a larger batch still runs
    assert flow.used == 50


def test_first_error_unwraps_groups():
    error = ValueError("inner")
    assert first_error(ExceptionGroup("outer", [ExceptionGroup("mid", [error])])) is error


def test_scores_count_exact_matches_and_invalid_labels():
    truth = ["B", "B", "T", "T", None, float("nan")]
    predicted = ["B", "T", "T", "monocyte", "B", "B"]
    scores = score_labels(truth, predicted)
    assert (scores.n_labelled, scores.n_correct) == (4, 2)
    assert scores.accuracy == 0.5 and scores.valid_label_rate == 0.75
    assert scores.classes == ("B", "T")
    assert scores.confusion.tolist() == [[1, 1, 0], [0, 1, 1]]
    assert scores.per_class()["T"] == {"cells": 2, "correct": 1, "recall": 0.5}
