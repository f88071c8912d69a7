"""Gene budgets for the 8192-token context, on the real Pythia tokenizer."""

from __future__ import annotations

import pytest

from tokenizer_ext import (
    GeneTokenCache,
    PromptBudgetError,
    PromptEncoder,
    TemplateError,
    TrainedRangeError,
    check_prompt_fits,
    estimate_genes_per_cell,
    estimate_sentence_tokens,
    fit_genes_per_cell,
)

HUMAN = {"organism": "Homo sapiens"}


@pytest.fixture(scope="module")
def pythia_encoder(pythia_tokenizer_path, gene_vocabulary) -> PromptEncoder:
    return PromptEncoder(GeneTokenCache(pythia_tokenizer_path, gene_vocabulary))


@pytest.fixture(scope="module")
def cell_type_template(c2s_templates) -> str:
    return c2s_templates["single_cell_cell_type_prediction_prompts.json"]["model_input"][0]


@pytest.fixture(scope="module")
def tissue_template(c2s_templates) -> str:
    return c2s_templates["multi_cell_tissue_prediction_prompts.json"]["model_input"][0]


@pytest.fixture(scope="module")
def longest_cell(ranked_pbmc):
    return ranked_pbmc.row(int(ranked_pbmc.lengths.argmax()))


def _tokens(encoder, template, cells, k):
    return encoder.encode(template, [c[:k] for c in cells], num_genes=k, **HUMAN).n_tokens


def test_single_cell_budget_is_the_largest_count_that_fits(
    pythia_encoder, cell_type_template, longest_cell
):
    cells = [longest_cell]
    budget = fit_genes_per_cell(
        pythia_encoder, cell_type_template, cells, reserved_output_tokens=7000, **HUMAN
    )
    k = budget.genes_per_cell
    assert budget.limit == 1192 and 100 <= k < len(cells[0])
    assert budget.prompt_tokens == _tokens(pythia_encoder, cell_type_template, cells, k) <= 1192
    assert _tokens(pythia_encoder, cell_type_template, cells, k + 1) > 1192
    assert budget.prompt.genes_per_cell == k


def test_single_cell_budget_stops_at_the_longest_cell(
    pythia_encoder, cell_type_template, ranked_pbmc, longest_cell
):
    short = ranked_pbmc.row(0)
    budget = fit_genes_per_cell(
        pythia_encoder, cell_type_template, [short], reserved_output_tokens=32, **HUMAN
    )
    assert budget.genes_per_cell == len(short) == budget.prompt.genes_per_cell
    budget = fit_genes_per_cell(
        pythia_encoder, cell_type_template, [longest_cell], reserved_output_tokens=32, **HUMAN
    )
    assert budget.genes_per_cell == len(longest_cell) > 400  # pbmc's longest cell fits 8192


def test_2048_long_gene_names_do_not_fit_8192(pythia_tokenizer_path, cell_type_template):
    names = [f"RP11-{i}C{i % 9}.{i % 4 + 1}" for i in range(3000)]
    encoder = PromptEncoder(GeneTokenCache(pythia_tokenizer_path, names))
    cell = list(range(3000))
    budget = fit_genes_per_cell(
        encoder, cell_type_template, [cell], reserved_output_tokens=16, **HUMAN
    )
    k = budget.genes_per_cell
    assert 100 < k < 2048
    assert budget.prompt_tokens <= 8176 < _tokens(encoder, cell_type_template, [cell], k + 1)


def test_multi_cell_budget_gives_every_cell_the_same_count(
    pythia_encoder, tissue_template, ranked_pbmc
):
    cells = [ranked_pbmc.row(i) for i in range(20)]
    budget = fit_genes_per_cell(
        pythia_encoder, tissue_template, cells, reserved_output_tokens=64, **HUMAN
    )
    k = budget.genes_per_cell
    assert 100 <= k < 400
    assert budget.prompt_tokens <= 8128 < _tokens(pythia_encoder, tissue_template, cells, k + 1)
    text = pythia_encoder.token_cache.encoder.decode(budget.prompt.ids)
    assert text.count("Cell 20:\n") == 1 and f"list of {k} gene names" in text


def test_request_that_cannot_fit_raises_with_the_numbers(
    pythia_encoder, cell_type_template, ranked_pbmc
):
    with pytest.raises(PromptBudgetError) as info:
        fit_genes_per_cell(
            pythia_encoder,
            cell_type_template,
            [ranked_pbmc.row(0)],
            reserved_output_tokens=7900,
            **HUMAN,
        )
    err = info.value
    assert (err.limit, err.max_model_len, err.reserved_output_tokens) == (292, 8192, 7900)
    assert err.genes_per_cell == 100 and err.n_cells == 1
    assert err.needed_tokens == _tokens(
        pythia_encoder, cell_type_template, [ranked_pbmc.row(0)], 100
    )
    assert str(err.needed_tokens) in str(err) and "292" in str(err)


def test_requested_count_is_checked_not_searched(pythia_encoder, cell_type_template, ranked_pbmc):
    cells = [ranked_pbmc.row(0)]
    fixed = fit_genes_per_cell(
        pythia_encoder,
        cell_type_template,
        cells,
        reserved_output_tokens=100,
        genes_per_cell=200,
        **HUMAN,
    )
    assert fixed.genes_per_cell == 200
    assert fixed.prompt_tokens == _tokens(pythia_encoder, cell_type_template, cells, 200)
    with pytest.raises(PromptBudgetError) as info:
        fit_genes_per_cell(
            pythia_encoder,
            cell_type_template,
            cells,
            reserved_output_tokens=7500,
            genes_per_cell=500,
            **HUMAN,
        )
    assert info.value.genes_per_cell == 500 and info.value.needed_tokens > 692
    with pytest.raises(TrainedRangeError, match="100-2048"):
        fit_genes_per_cell(
            pythia_encoder,
            cell_type_template,
            cells,
            reserved_output_tokens=0,
            genes_per_cell=50,
            **HUMAN,
        )
    with pytest.raises(TemplateError, match="genes_per_cell"):
        fit_genes_per_cell(
            pythia_encoder, cell_type_template, cells, reserved_output_tokens=0, num_genes=9
        )


@pytest.mark.parametrize("n_cells", [4, 21])
def test_multi_cell_counts_outside_training_are_rejected(
    n_cells, pythia_encoder, tissue_template, ranked_pbmc
):
    cells = [ranked_pbmc.row(i) for i in range(n_cells)]
    with pytest.raises(TrainedRangeError, match="5-20"):
        fit_genes_per_cell(
            pythia_encoder, tissue_template, cells, reserved_output_tokens=0, **HUMAN
        )
    relaxed = fit_genes_per_cell(
        pythia_encoder, tissue_template, cells, reserved_output_tokens=0, ranges=None, **HUMAN
    )
    assert relaxed.prompt_tokens <= 8192 and relaxed.prompt.n_cells == n_cells


def test_estimate_matches_its_formula_and_raises_below_the_minimum(
    pythia_encoder, cell_type_template, tissue_template
):
    single = estimate_genes_per_cell(
        pythia_encoder, cell_type_template, 1, reserved_output_tokens=0, **HUMAN
    )
    assert 1000 < single <= 2048
    multi = estimate_genes_per_cell(
        pythia_encoder, tissue_template, 20, reserved_output_tokens=0, tokens_per_gene=3.0, **HUMAN
    )
    assert 100 <= multi < 140  # (8192 - fixed text) / (20 cells x 3 tokens)
    with pytest.raises(PromptBudgetError) as info:
        estimate_genes_per_cell(
            pythia_encoder, tissue_template, 20, reserved_output_tokens=4000, **HUMAN
        )
    assert info.value.n_cells == 20 and info.value.limit == 4192


def test_output_reservation_covers_real_sentences(pythia_encoder, ranked_pbmc):
    reserve = estimate_sentence_tokens(pythia_encoder, 200)
    cache = pythia_encoder.token_cache
    actual = [cache.sentence_token_count(ranked_pbmc.row(i)[:200]) + 1 for i in range(100)]
    assert max(actual) <= reserve < 2 * max(actual)
    assert estimate_sentence_tokens(pythia_encoder, 200, n_cells=5) > 5 * reserve - 5


def test_check_prompt_fits():
    check_prompt_fits(8000, reserved_output_tokens=192)
    with pytest.raises(PromptBudgetError) as info:
        check_prompt_fits(8001, reserved_output_tokens=192, n_cells=5, genes_per_cell=300)
    assert (info.value.needed_tokens, info.value.limit, info.value.genes_per_cell) == (
        8001,
        8000,
        300,
    )
