"""Ranking internals seen through the public API: dtypes, blocks, RankedCells."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import tokenizer_ext.ranking as ranking
import tokenizer_ext.row_order as row_order
from tests.tokenizer_ext.sentence_helpers import rank_cells
from tokenizer_ext import GeneVocabulary, RankedCells, cell_sentences


def _naive_stable(dense: np.ndarray, names: list[str]) -> list[str]:
    return [
        " ".join(names[c] for c in sorted(np.flatnonzero(row), key=lambda c: (-float(row[c]), c)))
        for row in dense
    ]


def _adata(dense: np.ndarray) -> ad.AnnData:
    adata = ad.AnnData(dense)
    adata.var_names = [f"G{i}" for i in range(dense.shape[1])]
    return adata


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int32, np.int64, np.uint16])
def test_stable_ranking_matches_a_naive_sort_for_every_dtype(dtype):
    rng = np.random.default_rng(1)
    dense = rng.poisson(1.5, size=(40, 60)).astype(dtype)
    adata = _adata(dense)
    assert cell_sentences(adata, tie_break="stable") == _naive_stable(dense, list(adata.var_names))


def test_float64_values_that_tie_in_float32_keep_their_float64_order():
    dense = np.array([[1.0, 1.0 + 1e-12, 0.0, 1.0 + 2e-12, 3.0]])
    assert np.float32(dense[0, 0]) == np.float32(dense[0, 1])
    assert cell_sentences(_adata(dense), tie_break="stable") == ["G4 G3 G1 G0"]
    assert cell_sentences(_adata(dense.astype(np.float32)), tie_break="stable") == ["G4 G0 G1 G3"]


def test_large_integer_counts_rank_correctly():
    dense = np.array([[2**40, 5, 2**40 + 1, 0, 5]], dtype=np.int64)
    assert cell_sentences(_adata(dense), tie_break="stable") == ["G2 G0 G1 G4"]


def test_sorting_in_many_small_blocks_gives_the_same_result(pbmc_raw, monkeypatch):
    expected = {t: cell_sentences(pbmc_raw, tie_break=t) for t in ("stable", "c2s")}
    monkeypatch.setattr(ranking, "SORT_BLOCK_ELEMENTS", 1000)  # ~1 row per block
    monkeypatch.setattr(row_order, "SORT_BLOCK_ELEMENTS", 1000)
    for tie_break, sentences in expected.items():
        assert cell_sentences(pbmc_raw, tie_break=tie_break) == sentences


def test_empty_rows_and_empty_matrices():
    dense = np.zeros((3, 4), dtype=np.float32)
    dense[1, 2] = 1.0
    assert cell_sentences(_adata(dense)) == ["", "G2", ""]
    empty = _adata(np.zeros((0, 4), dtype=np.float32))
    assert cell_sentences(empty) == [] and len(rank_cells(empty)) == 0


def test_ranked_cells_truncate_select_concatenate():
    ranked = RankedCells(np.arange(6, dtype=np.int32), np.array([0, 3, 3, 6]))
    assert ranked.lengths.tolist() == [3, 0, 3]
    assert ranked.truncate(2).words.tolist() == [0, 1, 3, 4]
    assert ranked.truncate(None) is ranked and ranked.truncate(10) is ranked
    picked = ranked.select([2, 0])
    assert picked.words.tolist() == [3, 4, 5, 0, 1, 2] and picked.offsets.tolist() == [0, 3, 6]
    joined = RankedCells.concatenate([ranked, picked])
    assert len(joined) == 5 and joined.row(4).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        ranked.truncate(-1)


def test_rank_cells_returns_word_indices_of_the_vocabulary(count_adata):
    vocab = GeneVocabulary(list(count_adata.var_names))
    ranked = rank_cells(count_adata, vocabulary=vocab, tie_break="stable", top_k=7)
    sentences = cell_sentences(count_adata, tie_break="stable", top_k=7)
    assert [" ".join(vocab.decode(ranked.row(i).tolist())) for i in range(5)] == sentences[:5]
    with pytest.raises(ValueError, match="columns"):
        rank_cells(count_adata, vocabulary=GeneVocabulary(["A", "B"]))


def test_input_matrix_is_not_modified(pbmc_raw):
    matrix = sp.csr_matrix(pbmc_raw.X, copy=True)
    before = (matrix.indices.copy(), matrix.data.copy())
    adata = _adata(np.zeros((1, 1), np.float32))
    adata = ad.AnnData(matrix)
    adata.var_names = pbmc_raw.var_names
    cell_sentences(adata, tie_break="c2s")
    assert np.array_equal(matrix.indices, before[0]) and np.array_equal(matrix.data, before[1])


@pytest.mark.parametrize("tie_break", ["c2s", "stable"])
def test_top_k_of_wide_rows_equals_the_full_ranking_cut(tie_break):
    from benchmarks.wide_atlas import cell_block

    matrix = cell_block(np.random.default_rng(3), 40, 3_000, 900)  # many tied values
    matrix.data[::7] = 0.0  # explicit zeros still consume C2S's shuffle
    column_to_word = np.arange(3_000, dtype=np.int32)
    full = ranking.rank_csr(
        matrix, column_to_word, tie_break=tie_break, rng=np.random.RandomState(1234)
    )
    cut = ranking.rank_csr(
        matrix, column_to_word, tie_break=tie_break, rng=np.random.RandomState(1234), top_k=200
    )
    assert cut.lengths.tolist() == [200] * 40
    for row in range(40):
        assert cut.row(row).tolist() == full.row(row)[:200].tolist()


@pytest.mark.parametrize("tie_break", ["c2s", "stable"])
def test_negative_zero_and_float64_zeros_are_dropped_before_and_after_the_top_k_cut(tie_break):
    # float64 values that float32 cannot hold are ranked by dense rank, where zero must
    # still be told apart; -0.0 is a zero too
    dense = np.array(
        [[0.5, -0.0, 1.0 + 1e-12, 0.0, 1.0, 2.0], [-0.0, 0.0, 3.0, 0.0, 0.0, 0.0]],
        dtype=np.float64,
    )
    stored = np.where(dense == 0, -0.0, dense).ravel()  # every zero stored, as -0.0
    matrix = sp.csr_matrix((stored, np.tile(np.arange(6), 2), [0, 6, 12]), shape=(2, 6))
    for top_k, expected in ((None, [[5, 2, 4, 0], [2]]), (3, [[5, 2, 4], [2]])):
        rng = np.random.RandomState(0) if tie_break == "c2s" else None
        ranked = ranking.rank_csr(
            matrix, np.arange(6, dtype=np.int32), tie_break=tie_break, rng=rng, top_k=top_k
        )
        assert [ranked.row(i).tolist() for i in range(2)] == expected
