"""BuildStage.build_ranked: prompts from ranked genes equal the sentence path's, id for id,
and whatever it does not decide itself falls back to the sentences' own errors."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.wide_atlas import cell_block, gene_symbols
from serving.core.errors import BatchItemError, InvalidTaskInput, PromptTooLong
from serving.core.prompt_builder import PromptBuilder
from serving.core.requests import PromptRequest, RankedPromptRequest
from serving.core.stages import BuildStage
from tokenizer_ext import GeneVocabulary, RankedCells
from tokenizer_ext.ranking import rank_csr
from tokenizer_ext.sentences import ranked_to_sentences

TASK = "cell_type_prediction"
FIELDS = {"n_genes": 60, "organism": "Homo sapiens"}


@pytest.fixture
def stage(pythia_tokenizer_dir) -> BuildStage:
    return BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))


def ranked_atlas(n_cells: int, symbols: list[str], expressed: int = 90) -> RankedCells:
    """Cells of the generated wide atlas ranked as the job ranks them (C2S tie-break)."""
    matrix = cell_block(np.random.default_rng(5), n_cells, len(symbols), expressed)
    vocabulary = GeneVocabulary(symbols, on_collision="merge")
    ranked = rank_csr(
        matrix, vocabulary.column_to_word, tie_break="c2s", rng=np.random.RandomState(42)
    )
    return ranked.truncate(FIELDS["n_genes"]), vocabulary


def by_sentences(stage, cells, vocabulary, templates, fields=FIELDS):
    sentences = ranked_to_sentences(cells, vocabulary)
    jobs = [
        PromptRequest(TASK, {**fields, "cell": s}, template=t)
        for s, t in zip(sentences, templates, strict=True)
    ]
    return stage.build(jobs)


def test_ranked_prompts_equal_the_sentence_path_with_many_templates(stage, pythia_tokenizer_dir):
    symbols = gene_symbols(700)
    symbols[10] = symbols[11].lower()  # a duplicate after upper-casing: merged, as C2S does
    cells, vocabulary = ranked_atlas(50, symbols)
    templates = [i % 15 for i in range(50)]
    ranked = stage.build_ranked(RankedPromptRequest(TASK, cells, vocabulary, FIELDS, templates))
    # built from the gene cache, not by the sentence fallback
    assert stage._ranked[vocabulary].build(TASK, cells, FIELDS, templates) is not None
    other = BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))
    expected = by_sentences(other, cells, vocabulary, templates)
    assert ranked == expected
    builder = stage.builder
    for prompt, sentence in zip(ranked[:5], ranked_to_sentences(cells, vocabulary), strict=False):
        text = builder.build(TASK, {**FIELDS, "cell": sentence}, prompt.template_index).text
        assert list(prompt.token_ids) == builder.encoder.encode(text)


def test_a_dataset_is_tokenised_once(stage, monkeypatch):
    cells, vocabulary = ranked_atlas(20, gene_symbols(500))
    stage.build_ranked(RankedPromptRequest(TASK, cells, vocabulary, FIELDS, [0] * 20))
    calls = []
    encode_batch = stage.builder.encoder.encode_batch
    monkeypatch.setattr(
        stage.builder.encoder, "encode_batch", lambda t: calls.append(t) or encode_batch(t)
    )
    again = stage.build_ranked(
        RankedPromptRequest(TASK, cells.select(range(10)), vocabulary, FIELDS, [0] * 10)
    )
    assert not calls and len(again) == 10


def test_cells_the_checks_refuse_raise_the_sentence_paths_error(pythia_tokenizer_dir):
    symbols = gene_symbols(300)
    symbols[:140] = [f"ENSG{i:011d}" for i in range(140)]  # under the dataset-wide bound
    cells, vocabulary = ranked_atlas(30, symbols, expressed=40)
    stage = BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))
    lengths = cells.lengths
    ensembl_share = [np.mean([w < 150 for w in cells.row(i).tolist()]) for i in range(len(lengths))]
    first_bad = next(i for i, share in enumerate(ensembl_share) if share >= 0.5)
    with pytest.raises(BatchItemError) as caught:
        stage.build_ranked(
            RankedPromptRequest(TASK, cells, vocabulary, FIELDS, [0] * len(cells)), offset=7
        )
    assert caught.value.index == 7 + first_bad
    assert isinstance(caught.value.cause, InvalidTaskInput)
    assert "Ensembl" in caught.value.cause.message


def test_too_long_and_out_of_range_fall_back_to_the_sentence_errors(stage):
    symbols = [f"VERYLONGGENENAME{i}XQZ" for i in range(3000)]
    matrix_words = np.arange(3000, dtype=np.int32)
    vocabulary = GeneVocabulary(symbols)
    cells = RankedCells(matrix_words, np.array([0, 3, 2003, 3000]))
    fields = {"n_genes": 2000, "organism": "Homo sapiens"}
    with pytest.raises(BatchItemError) as caught:
        stage.build_ranked(RankedPromptRequest(TASK, cells, vocabulary, fields, [0, 0, 0]))
    assert caught.value.index == 1 and isinstance(caught.value.cause, PromptTooLong)
    with pytest.raises(BatchItemError) as caught:
        stage.build_ranked(
            RankedPromptRequest(TASK, cells, vocabulary, {**fields, "n_genes": 3000}, [0, 0, 0])
        )
    assert isinstance(caught.value.cause, InvalidTaskInput)


def test_a_full_gene_cache_builds_from_sentences(stage):
    cells, vocabulary = ranked_atlas(8, gene_symbols(400))
    stage.builder.max_cached_genes = len(stage.builder.gene_cache)  # no room for the dataset
    ranked = stage.build_ranked(RankedPromptRequest(TASK, cells, vocabulary, FIELDS, [2] * 8))
    assert len(stage.builder.gene_cache) == stage.builder.max_cached_genes
    builder = stage.builder
    for prompt, sentence in zip(ranked, ranked_to_sentences(cells, vocabulary), strict=True):
        text = builder.build(TASK, {**FIELDS, "cell": sentence}, 2).text
        assert list(prompt.token_ids) == builder.encoder.encode(text)
