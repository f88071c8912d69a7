"""Cell sentences: byte-identical to cell2sentence, over every matrix layout."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import MATRIX_KINDS, as_matrix_kind

from tests.tokenizer_ext.sentence_helpers import (
    iter_cell_sentences,
    rank_cells,
    sentence_from_mapping,
)
from tokenizer_ext import (
    ExpressionValueError,
    GeneVocabulary,
    cell_sentences,
    iter_ranked_chunks,
    open_expression,
    sentence_from_vector,
)


def c2s_sentences(c2s_utils, adata: ad.AnnData) -> list[str]:
    """cell2sentence's own sentences, as ``CSData`` makes them.

    Run on a copy: ``generate_vocabulary`` sorts a CSR matrix's indices in place.
    """
    adata = adata.copy()
    vocab = c2s_utils.generate_vocabulary(adata)
    return list(c2s_utils.generate_sentences(adata, vocab, random_state=42))


@pytest.mark.filterwarnings("ignore:backed CSC")
@pytest.mark.parametrize("kind", MATRIX_KINDS)
@pytest.mark.parametrize("cells", ["pbmc_raw", "count_adata"])
def test_c2s_tie_break_is_byte_identical(cells, kind, request, c2s_utils, tmp_path):
    """Real log-normalised cells, and integer counts with many ties."""
    adata = as_matrix_kind(request.getfixturevalue(cells), kind, tmp_path)
    in_memory = adata.to_memory() if kind.startswith("backed") else adata
    expected = c2s_sentences(c2s_utils, in_memory)
    assert cell_sentences(adata, chunk_size=97) == expected
    assert len(expected) == adata.n_obs and all(expected)


def test_integer_counts_really_have_ties(count_adata):
    row = count_adata.X[0].toarray().ravel()
    _, counts = np.unique(row[row > 0], return_counts=True)
    assert counts.max() > 20  # the c2s parity above is about tie-breaking


def test_c2s_result_does_not_depend_on_chunk_size(pbmc_raw):
    assert cell_sentences(pbmc_raw, chunk_size=33) == cell_sentences(pbmc_raw, chunk_size=4096)


def test_use_raw_and_layer_read_the_right_matrix(pbmc, pbmc_raw, tmp_path):
    expected = cell_sentences(pbmc_raw)
    assert cell_sentences(pbmc, use_raw=True) == expected
    with_layer = pbmc_raw.copy()
    with_layer.layers["lognorm"] = with_layer.X.copy()
    with_layer.X = sp.csr_matrix(with_layer.shape, dtype=np.float32)
    assert cell_sentences(with_layer, layer="lognorm") == expected
    path = tmp_path / "layer.h5ad"
    with_layer.write_h5ad(path)
    assert cell_sentences(str(path), layer="lognorm") == expected
    pbmc.write_h5ad(tmp_path / "pbmc.h5ad")
    assert cell_sentences(tmp_path / "pbmc.h5ad", use_raw=True) == expected
    backed = ad.read_h5ad(tmp_path / "pbmc.h5ad", backed="r")
    assert cell_sentences(backed, use_raw=True) == expected


def test_file_input_is_read_lazily_in_chunks(pbmc_raw, tmp_path):
    path = tmp_path / "cells.h5ad"
    pbmc_raw.write_h5ad(path)
    with open_expression(path) as source:
        assert not isinstance(source.matrix, np.ndarray | sp.spmatrix)
        assert source.read_rows(5, 9).shape == (4, 765)
        assert list(source.obs_names[:2]) == list(pbmc_raw.obs_names[:2])
    chunks = list(iter_ranked_chunks(path, chunk_size=300))
    assert [(c.start, c.stop) for c in chunks] == [(0, 300), (300, 600), (600, 700)]


def test_iter_cell_sentences_yields_names_with_sentences(pbmc_raw):
    pairs = list(iter_cell_sentences(pbmc_raw, chunk_size=256))
    names = np.concatenate([n for n, _ in pairs])
    sentences = [s for _, chunk in pairs for s in chunk]
    assert names.tolist() == pbmc_raw.obs_names.tolist()
    assert sentences == cell_sentences(pbmc_raw)
    assert [len(s) for _, s in pairs] == [256, 256, 188]


def _values_along(sentence: str, adata: ad.AnnData, row: int) -> list[float]:
    column = {g.upper(): i for i, g in enumerate(adata.var_names)}
    dense = adata.X[row].toarray().ravel()
    return [float(dense[column[g]]) for g in sentence.split(" ")]


@pytest.mark.parametrize("fixture", ["pbmc_raw", "count_adata"])
def test_stable_differs_from_c2s_only_inside_groups_of_equal_values(fixture, request):
    adata = request.getfixturevalue(fixture)
    c2s = cell_sentences(adata, tie_break="c2s")
    stable = cell_sentences(adata, tie_break="stable")
    reordered = 0
    for row, (a, b) in enumerate(zip(c2s, stable, strict=True)):
        values_a, values_b = _values_along(a, adata, row), _values_along(b, adata, row)
        assert values_a == values_b  # same value at every position
        groups_a: dict[float, set[str]] = {}
        groups_b: dict[float, set[str]] = {}
        for gene, value in zip(a.split(" "), values_a, strict=True):
            groups_a.setdefault(value, set()).add(gene)
        for gene, value in zip(b.split(" "), values_b, strict=True):
            groups_b.setdefault(value, set()).add(gene)
        assert groups_a == groups_b  # same genes in each tie group
        reordered += a != b
    assert reordered > len(c2s) // 2  # ties really are broken differently


def test_stable_breaks_ties_by_column_order(count_adata):
    dense = count_adata.X.toarray()
    names = np.array(count_adata.var_names)
    for row, sentence in enumerate(cell_sentences(count_adata, tie_break="stable")[:20]):
        expected = sorted(np.flatnonzero(dense[row]), key=lambda c: (-dense[row, c], c))
        assert sentence == " ".join(names[expected])


@pytest.mark.parametrize("tie_break", ["c2s", "stable"])
def test_stored_index_order_does_not_matter_and_is_not_modified(pbmc_raw, tie_break):
    assert not pbmc_raw.X.has_sorted_indices  # as shipped by scanpy
    stored = pbmc_raw.X.indices.copy()
    sorted_copy = pbmc_raw.copy()
    sorted_copy.X = pbmc_raw.X.copy()
    sorted_copy.X.sort_indices()
    assert cell_sentences(pbmc_raw, tie_break=tie_break) == cell_sentences(
        sorted_copy, tie_break=tie_break
    )
    assert np.array_equal(pbmc_raw.X.indices, stored)


def test_c2s_pipeline_sorts_csr_indices_before_making_sentences(pbmc_raw, c2s_utils):
    # Why "c2s" uses column order: C2S's vocabulary step sorts the indices in place.
    adata = pbmc_raw.copy()
    c2s_utils.generate_vocabulary(adata)
    assert adata.X.has_sorted_indices


def test_top_k_keeps_the_first_k_words(pbmc_raw):
    full = cell_sentences(pbmc_raw)
    top = cell_sentences(pbmc_raw, top_k=100)
    assert all(t == " ".join(f.split(" ")[:100]) for t, f in zip(top, full, strict=True))
    assert {len(t.split(" ")) for t in top} == {100}


def test_explicit_zeros_are_left_out_without_shifting_the_rng(count_adata, c2s_utils):
    with_zeros = count_adata.copy()
    matrix = sp.csr_matrix(with_zeros.X)
    matrix.data[::5] = 0  # stored but zero: C2S shuffles them and appends them last
    with_zeros.X = matrix
    dense = matrix.toarray()
    expected = []
    for row, sentence in enumerate(c2s_sentences(c2s_utils, with_zeros)):
        names = sentence.split(" ")
        kept = [g for g in names if dense[row, int(g.removeprefix("GENE"))] != 0]
        assert len(kept) < len(names)
        expected.append(" ".join(kept))
    assert cell_sentences(with_zeros) == expected


@pytest.mark.parametrize("bad", [-0.5, np.nan])
def test_negative_or_nan_expression_is_rejected(bad):
    adata = ad.AnnData(np.array([[1.0, bad, 2.0]], dtype=np.float32))
    adata.var_names = ["A", "B", "C"]
    with pytest.raises(ExpressionValueError):
        cell_sentences(adata)


def test_scaled_x_of_pbmc_is_rejected_with_a_hint(pbmc):
    with pytest.raises(ExpressionValueError, match="use_raw"):
        cell_sentences(pbmc)


def test_vector_and_mapping_paths_match_a_one_cell_adata(pbmc_raw):
    one = pbmc_raw[3:4].copy()
    expected = cell_sentences(one)[0]
    row = one.X.toarray().ravel()
    assert sentence_from_vector(row, list(one.var_names)) == expected
    assert sentence_from_vector(one.X, list(one.var_names)) == expected
    mapping = dict(zip(one.var_names, row.tolist(), strict=True))
    assert sentence_from_mapping(mapping) == expected
    assert sentence_from_mapping({"cd3e": 1.0, "Lyz": 3.0, "Zero": 0.0}) == "LYZ CD3E"
    stable = sentence_from_vector(row, list(one.var_names), tie_break="stable", top_k=5)
    assert stable.split(" ") == cell_sentences(one, tie_break="stable")[0].split(" ")[:5]


def test_colliding_symbols_merge_at_the_strongest_column():
    adata = ad.AnnData(np.array([[1.0, 5.0, 3.0, 0.0], [2.0, 0.0, 0.0, 9.0]], dtype=np.float32))
    adata.var_names = ["Cd3e", "Lyz2", "CD3E", "cd3e"]
    vocab = GeneVocabulary(list(adata.var_names), on_collision="merge")
    assert cell_sentences(adata, vocabulary=vocab, tie_break="stable") == ["LYZ2 CD3E", "CD3E"]
    ranked = rank_cells(adata, vocabulary=vocab)
    assert ranked.lengths.tolist() == [2, 1]


def test_backed_csc_warns_that_rows_read_whole_columns(count_adata, tmp_path):
    adata = as_matrix_kind(count_adata, "backed_csc", tmp_path)
    with h5py.File(tmp_path / "cells.h5ad") as f:
        assert f["X"].attrs["encoding-type"] == "csc_matrix"
    with pytest.warns(UserWarning, match="store the file as CSR"):
        sentences = cell_sentences(adata, tie_break="stable")
    assert sentences == cell_sentences(count_adata, tie_break="stable")


def test_backed_csr_rows_are_read_straight_from_the_file(pbmc_raw, tmp_path):
    """Row ranges of a backed CSR file, read from its arrays, equal anndata's own reads."""
    import anndata.io

    from tokenizer_ext.expression_source import BackedCsrRows, open_expression

    path = tmp_path / "pbmc.h5ad"
    pbmc_raw.write_h5ad(path)
    with open_expression(path) as source:
        assert isinstance(source.matrix, BackedCsrRows)
        with h5py.File(path, "r") as file:
            reference = anndata.io.sparse_dataset(file["X"])
            for start, stop in [(0, 1), (3, 3), (10, 250), (650, 700), (690, 800)]:
                ours, theirs = source.read_rows(start, stop), reference[start:stop]
                assert ours.shape == theirs.shape
                assert (ours != theirs).nnz == 0
                values = source.read_values(start, stop)  # the input checks' half read
                assert np.array_equal(values.data, theirs.data)
                assert np.array_equal(values.indptr, theirs.indptr)
