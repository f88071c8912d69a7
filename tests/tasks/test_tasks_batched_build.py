"""BuildStage's batched one-cell path: the same ids as one prompt at a time and as
tokenising the whole text, the same first-error index, and each outside gene tokenised once."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.wide_atlas import cell_block, gene_symbols
from serving.core.errors import BatchItemError, InvalidTaskInput, PromptTooLong
from serving.core.prompt_builder import PromptBuilder
from serving.core.requests import PromptRequest
from serving.core.stages import BuildStage
from tokenizer_ext import GeneVocabulary
from tokenizer_ext.ranking import rank_csr

TASK = "cell_type_prediction"


@pytest.fixture
def stage(pythia_tokenizer_dir) -> BuildStage:
    """A fresh stage: each test sees its own gene cache grow."""
    return BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))


def one_at_a_time(stage: BuildStage, jobs: list[PromptRequest]) -> list[tuple[int, ...]]:
    return [stage.build([job])[0].token_ids for job in jobs]


def wide_sentences(n_cells: int, n_genes: int = 600, expressed: int = 80) -> list[str]:
    """Cells of the generated wide atlas (ties in value, genes outside any model list)."""
    matrix = cell_block(np.random.default_rng(3), n_cells, n_genes, expressed)
    vocabulary = GeneVocabulary(gene_symbols(n_genes))
    ranked = rank_csr(
        matrix, vocabulary.column_to_word, tie_break="c2s", rng=np.random.RandomState(42)
    )
    return [" ".join(vocabulary.decode(ranked.row(i).tolist())) for i in range(n_cells)]


@pytest.mark.parametrize("template", [0, 7, 14])
def test_batched_ids_equal_one_prompt_at_a_time_and_full_tokenisation(stage, template):
    sentences = wide_sentences(40)
    sentences[3] = sentences[3].lower()  # upper-cased as C2S does
    sentences[4] = " ".join(sentences[4].split()[:1])  # one gene: both boundaries glued
    jobs = [
        PromptRequest(TASK, {"cell": s, "n_genes": n, "organism": o}, template=template)
        for s, n, o in zip(
            sentences, [50, 10, 200, 50] * 10, ["Homo sapiens", "Mus musculus"] * 20, strict=True
        )
    ]
    batched = [p.token_ids for p in stage.build(jobs)]
    fresh = BuildStage(PromptBuilder(stage.builder.encoder, 8192))
    assert batched == one_at_a_time(fresh, jobs)
    builder = stage.builder
    for job, ids in zip(jobs, batched, strict=True):
        text = builder.build(TASK, job.inputs, template).text
        assert list(ids) == builder.encoder.encode(text)


def test_mixed_chunk_keeps_order_and_the_random_template_draws(stage, pythia_tokenizer_dir):
    cell = "CD3D LYZ WIDEGENE1 CD74"
    jobs = [
        PromptRequest(TASK, {"cell": cell}, template=0),
        PromptRequest(TASK, {"cell": cell}, template="random"),
        PromptRequest(raw_prompt="Hello there"),
        PromptRequest("tissue_prediction", {"cells": [cell, cell]}, template=0),
        PromptRequest(TASK, {"cell": cell, "n_genes": 2}, template=3),
        PromptRequest(TASK, {"cell": cell}, template="random"),
    ]
    other = BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))
    batched = [(p.token_ids, p.template_index) for p in stage.build(jobs)]
    singly = [(p.token_ids, p.template_index) for job in jobs for p in other.build([job])]
    assert batched == singly
    assert [index for _, index in batched[0::4]] == [0, 3]


def test_the_first_invalid_item_is_named_whichever_path_builds_it(stage):
    long_cell = " ".join(f"LONGGENE{i}" for i in range(2048))
    jobs = [PromptRequest(TASK, {"cell": f"CD3D LYZ G{i}"}) for i in range(6)]
    jobs[2] = PromptRequest(TASK, {"cell": long_cell, "n_genes": 2048})  # too long: batched path
    jobs[4] = PromptRequest(TASK, {"cell": "CD3D CD3D"})  # invalid: validation
    with pytest.raises(BatchItemError) as caught:
        stage.build(jobs, offset=10)
    assert caught.value.index == 12 and isinstance(caught.value.cause, PromptTooLong)
    jobs[2] = jobs[0]
    with pytest.raises(BatchItemError) as caught:
        stage.build(jobs)
    assert caught.value.index == 4 and isinstance(caught.value.cause, InvalidTaskInput)
    with pytest.raises(PromptTooLong):  # a lone job raises its own error
        stage.build([PromptRequest(TASK, {"cell": long_cell, "n_genes": 2048})])


def test_each_gene_outside_the_model_list_is_tokenised_once(stage, monkeypatch):
    builder = stage.builder
    before = len(builder.gene_cache)
    sentences = wide_sentences(30)
    jobs = [PromptRequest(TASK, {"cell": s, "n_genes": 80}) for s in sentences]
    stage.build(jobs)
    outside = {g for s in sentences for g in s.split()} - set(
        builder.gene_cache.vocabulary[:before]
    )
    assert len(builder.gene_cache) == before + len(outside)
    calls = []
    encode_batch = builder.encoder.encode_batch
    monkeypatch.setattr(
        builder.encoder, "encode_batch", lambda texts: calls.append(texts) or encode_batch(texts)
    )
    again = stage.build(jobs)
    assert not calls and len(builder.gene_cache) == before + len(outside)
    assert [p.token_ids for p in again] == one_at_a_time(stage, jobs)


def test_threads_building_at_once_get_the_ids_of_one_at_a_time(pythia_tokenizer_dir):
    """Ray Serve runs a replica's sync methods in a thread pool: chunks that meet new genes
    and new boundary pieces at the same time must not see each other's half-grown table."""
    from concurrent.futures import ThreadPoolExecutor

    sentences = wide_sentences(160, n_genes=900)
    chunks = [
        [PromptRequest(TASK, {"cell": s, "n_genes": 60}, 0) for s in sentences[i : i + 8]]
        for i in range(0, len(sentences), 8)
    ]
    expected = [
        one_at_a_time(BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir)), c) for c in chunks
    ]
    shared = BuildStage(PromptBuilder.from_model(pythia_tokenizer_dir))
    with ThreadPoolExecutor(8) as pool:
        built = list(pool.map(lambda chunk: [p.token_ids for p in shared.build(chunk)], chunks))
    assert built == expected
