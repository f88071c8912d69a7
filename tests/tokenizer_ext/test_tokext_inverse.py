"""The inverse transform, compared with cell2sentence on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer_ext import (
    GeneVocabulary,
    RankExpressionFit,
    clean_generated_sentence,
    fit_rank_expression,
    reconstruct_expression,
    split_multi_cell_text,
)

IMMUNE_FIT = RankExpressionFit(slope=-0.676, intercept=2.238)


@pytest.fixture(scope="module")
def pbmc_vocabulary(pbmc_raw) -> GeneVocabulary:
    return GeneVocabulary(list(pbmc_raw.var_names))


def _fake_generation(rng, symbols: list[str]) -> str:
    """Model-like output: genes, repeats, junk, lower case, a closing '.'."""
    words = list(rng.choice(symbols, size=rng.integers(1, 60)))
    for _ in range(rng.integers(0, 8)):
        words.insert(rng.integers(0, len(words) + 1), words[rng.integers(0, len(words))])
    for junk in rng.choice(["FOO", "cd3d", "GENE.", "Cell", "XYZ-1"], size=rng.integers(0, 4)):
        words.insert(rng.integers(0, len(words) + 1), junk)
    text = " ".join(w.lower() if rng.random() < 0.1 else w for w in words)
    return text + ("." if rng.random() < 0.7 else "")


def test_cleaning_equals_c2s_post_processing(c2s_utils, pbmc_vocabulary):
    rng = np.random.default_rng(3)
    symbols = list(pbmc_vocabulary.symbols)
    with_duplicates = 0
    for _ in range(300):
        text = _fake_generation(rng, symbols)
        stripped = text.strip().removesuffix(".").rstrip()  # C2S: strip the answer's '.' first
        reference, replaced = c2s_utils.post_process_generated_cell_sentences(stripped, symbols)
        cleaned = clean_generated_sentence(text, pbmc_vocabulary)
        assert cleaned.genes == [g for g in reference if g != "NOT_A_GENE"]
        assert cleaned.n_dropped == replaced
        with_duplicates += len(set(cleaned.genes)) < len(stripped.split(" ")) - replaced
    assert with_duplicates > 100  # the duplicate rule was exercised


def test_cleaning_keeps_a_duplicate_once_at_its_mean_position(pbmc_vocabulary):
    cleaned = clean_generated_sentence("CD3D LYZ cd3d FOO CD74 CD3D.", pbmc_vocabulary)
    # CD3D at 0, 2, 5 -> mean 2.33 -> index 2 of [LYZ, FOO, CD74] (FOO keeps its place).
    assert cleaned.genes == ["LYZ", "CD3D", "CD74"] and cleaned.n_dropped == 1


def test_reconstruction_equals_c2s_up_to_clipping(c2s_utils):
    vocab = GeneVocabulary([f"G{i}" for i in range(3000)])
    rng = np.random.default_rng(0)
    words = [f"G{i}" for i in rng.permutation(3000)[:2600]]
    words[10] = "NOPE"  # unknown words keep their rank in both
    words[20] = words[5]  # a repeat keeps its last value in both
    sentence = " ".join(words)
    symbols = list(vocab.symbols)
    expected = c2s_utils.reconstruct_expression_from_cell_sentence(
        sentence, " ", symbols, IMMUNE_FIT.slope, IMMUNE_FIT.intercept
    )
    unclipped = reconstruct_expression(sentence, vocab, IMMUNE_FIT, clip=False)
    np.testing.assert_array_equal(unclipped, expected)
    assert (expected < 0).sum() > 100  # past rank ~2000 C2S goes negative
    clipped = reconstruct_expression(sentence, vocab, IMMUNE_FIT)
    np.testing.assert_array_equal(clipped, np.maximum(expected, 0))


def test_fit_equals_c2s_regression_on_real_cells(c2s_utils, pbmc_raw, pbmc):
    from scipy.stats import pearsonr
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    dense = pbmc_raw.X.toarray()
    np.random.seed(0)
    ranks = c2s_utils.sort_transcript_counts(dense)
    frame = c2s_utils.get_benchmark_df(dense, ranks)
    x_all = frame["log_rank_normalized_expression"].to_numpy()
    y_all = frame["normalized_expression"].to_numpy()
    below = x_all < 3
    line = LinearRegression().fit(x_all[below].reshape(-1, 1), y_all[below])
    predicted = line.predict(x_all.reshape(-1, 1))

    fit = fit_rank_expression(pbmc, use_raw=True)
    assert fit.slope == pytest.approx(line.coef_[0], rel=1e-9)
    assert fit.intercept == pytest.approx(line.intercept_, rel=1e-9)
    assert fit.r_squared == pytest.approx(r2_score(y_all, predicted), rel=1e-9)
    assert fit.pearson_r == pytest.approx(pearsonr(y_all, predicted).statistic, rel=1e-9)
    assert fit.n_points == below.sum() and fit.n_cells == 700
    assert fit.slope < 0 < fit.intercept


def test_fit_reads_backed_files_and_subsets(pbmc_raw, tmp_path):
    path = tmp_path / "cells.h5ad"
    pbmc_raw.write_h5ad(path)
    in_memory = fit_rank_expression(pbmc_raw)
    assert fit_rank_expression(path, chunk_size=64).slope == pytest.approx(in_memory.slope)
    subset = fit_rank_expression(pbmc_raw, max_cells=100, seed=1)
    rows = np.sort(np.random.RandomState(1).choice(700, size=100, replace=False))
    assert subset.n_cells == 100
    assert subset.slope == pytest.approx(fit_rank_expression(pbmc_raw[rows].copy()).slope)
    assert subset.slope != pytest.approx(in_memory.slope)


def test_fit_predict_clips_at_zero():
    ranks = np.array([0, 9, 99, 999, 4999])
    assert IMMUNE_FIT.predict(ranks, clip=False)[-1] < 0
    np.testing.assert_allclose(
        IMMUNE_FIT.predict(ranks), [2.238, 2.238 - 0.676, 2.238 - 1.352, 2.238 - 2.028, 0.0]
    )


def test_multi_cell_answers_split_into_sentences():
    text = "Cell 1:\nCD3D LYZ.\nCell 2:\nCD74 HLA-DRA.\nCell 3:\nMT-ND3\n."
    assert split_multi_cell_text(text) == ["CD3D LYZ", "CD74 HLA-DRA", "MT-ND3"]
    assert split_multi_cell_text("Cell 1:\nA B.\n") == ["A B"]
