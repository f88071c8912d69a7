"""Prompt ids from cached pieces equal full tokenisation, for every public C2S template."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import C2S_TEMPLATE_FILES, MOUSE_GENES

from tokenizer_ext import (
    GeneTokenCache,
    PromptEncoder,
    PromptTemplate,
    RankedCells,
    TemplateError,
    TextEncoder,
    multi_cell_text,
)

FIELDS = {
    "organism": "Homo sapiens",
    "cell_type": "CD4-positive, alpha-beta T cell",
    "tissue": "peripheral blood",
    "abstract": "Single-cell RNA-seq of PBMCs from a healthy donor.",
}
# Boundary-heavy genes: trailing digits and '.', inner '-', leading digits, mouse case.
EDGE_GENES = ["HLA-DRA", "RP11-782C8.1", "MT-ND3", "C10ORF54", "AC084018.1"]
MOUSE_UPPER = [g.upper() for g in MOUSE_GENES]


def c2s_render(template: str, cells: list[list[str]], **fields) -> str:
    """The text as C2S builds it: str.format with joined genes."""
    sentences = [" ".join(c) for c in cells]
    values = {"num_genes": max((len(c) for c in cells), default=0), "num_cells": len(cells)}
    values |= fields
    if "{multi_cell_sentences}" in template:
        values["multi_cell_sentences"] = multi_cell_text(sentences)
    elif "{cell_sentence}" in template:
        values["cell_sentence"] = sentences[0]
    return template.format(**values)


def cell_sets(ranked_pbmc, vocabulary, sentence_field) -> list[list[list[str]]]:
    real = [vocabulary.decode(ranked_pbmc.row(i)[:k].tolist()) for i, k in enumerate((200, 37, 5))]
    edge = EDGE_GENES + MOUSE_UPPER
    if sentence_field == "cell_sentence":
        return [[real[0]], [edge], [edge[::-1]], [["RP11-782C8.1"]], [MOUSE_UPPER[5:7]]]
    if sentence_field == "multi_cell_sentences":
        return [
            real,
            [edge, MOUSE_UPPER, real[2]],
            [["1700001C19RIK"]],
            [["AC084018.1"], ["H2-K1"], ["HLA-DRA", "MT-ND3"]],
        ]
    return [[]]


@pytest.mark.parametrize("template_file", C2S_TEMPLATE_FILES)
def test_every_public_template_renders_to_exact_ids(
    template_file, prompt_encoder, c2s_templates, ranked_pbmc, gene_vocabulary
):
    templates = c2s_templates[template_file]
    encoder = prompt_encoder.token_cache.encoder
    checked = 0
    for template in templates["model_input"] + templates["response"]:
        field = PromptTemplate(template).sentence_field
        for cells in cell_sets(ranked_pbmc, gene_vocabulary, field):
            # Generation prompts state the counts they ask for.
            fields = FIELDS if cells else FIELDS | {"num_genes": 200, "num_cells": 5}
            expected = encoder.encode(c2s_render(template, cells, **fields))
            prompt = prompt_encoder.encode(template, cells, **fields)
            assert prompt.ids == expected, (template, cells)
            assert prompt.n_tokens == len(expected) and prompt.n_cells == len(cells)
            checked += 1
    assert checked >= len(templates["model_input"])


def test_the_c2s_reference_template_0_on_pythia(pythia_tokenizer_path, gene_vocabulary):
    encoder = PromptEncoder(GeneTokenCache(pythia_tokenizer_path, gene_vocabulary))
    template = (
        "The following is a list of {num_genes} gene names ordered by descending expression "
        "level in a {organism} cell. Your task is to give the cell type which this cell "
        "belongs to based on its gene expression.\nCell sentence: {cell_sentence}.\n"
        "The cell type corresponding to these genes is:"
    )
    prompt = encoder.encode(
        template, [["CD3D", "HLA-DRA", "RP11-782C8.1"]], organism="Homo sapiens"
    )
    text = encoder.token_cache.encoder.decode(prompt.ids)
    assert text.endswith(
        "Cell sentence: CD3D HLA-DRA RP11-782C8.1.\nThe cell type corresponding to these genes is:"
    )
    assert prompt.ids == encoder.token_cache.encoder.encode(text)


def test_gene_ids_concatenate_to_the_sentence_ids(prompt_encoder, ranked_pbmc):
    cache = prompt_encoder.token_cache
    for row in range(3):
        words = ranked_pbmc.row(row)[:300]
        text = " " + " ".join(cache.vocabulary.decode(words.tolist()))
        assert cache.sentence_ids(words) == cache.encoder.encode(text)
        assert int(cache.token_counts[words].sum()) == len(cache.encoder.encode(text))


def test_pythia_takes_about_three_tokens_per_gene(pythia_tokenizer_path, gene_vocabulary):
    counts = GeneTokenCache(pythia_tokenizer_path, gene_vocabulary).token_counts
    assert 2.5 < counts.mean() < 4.0 and counts.min() >= 1


def test_demo_tokenizer_holds_every_gene_as_one_token(demo_tokenizer, gene_vocabulary):
    cache = GeneTokenCache(demo_tokenizer, gene_vocabulary)
    assert cache.token_counts.tolist() == [1] * len(gene_vocabulary)
    assert len(cache.encoder.encode("HLA-DRA")) == 1


@pytest.mark.parametrize(
    "template",
    [
        "{cell_sentence}",
        "{cell_sentence}.",
        "Genes:{cell_sentence}!",
        "Genes: {cell_sentence}foo bar",
        "A  {cell_sentence}  B",
        "x\n{cell_sentence}\n",
        "{multi_cell_sentences}",
        "Cells:{multi_cell_sentences}done",
    ],
)
def test_custom_templates_with_awkward_boundaries_are_exact(template, prompt_encoder):
    cells = [["HLA-DRA", "RP11-782C8.1"], ["1700001C19RIK"], ["MT-ND3", "H2-K1", "C10ORF54"]]
    if "{cell_sentence}" in template:
        cells = cells[:1]
    for cell_set in (cells, [[c[0]] for c in cells]):
        prompt_encoder.verify(template, cell_set)


def test_encode_batch_equals_encode_for_every_cell(prompt_encoder, c2s_templates, ranked_pbmc):
    templates = c2s_templates["single_cell_cell_type_prediction_prompts.json"]["model_input"]
    # Add cells with 0, 1 and 2 genes to the real ones: each hits another boundary case.
    short = RankedCells(np.array([5, 7, 9], np.int32), np.array([0, 0, 1, 3]))
    cells = RankedCells.concatenate([ranked_pbmc.select(range(40)), short])
    for template in templates[:3] + templates[-1:]:
        batch = prompt_encoder.encode_batch(template, cells, top_k=120, organism="Homo sapiens")
        assert len(batch) == 43
        for i in range(len(cells)):
            words = cells.row(i)[:120]
            expected = prompt_encoder.token_cache.encoder.encode(
                prompt_encoder.render_text(
                    template, [words], organism="Homo sapiens", num_genes=120
                )
            )
            assert batch[i] == expected
        assert batch.n_tokens.tolist() == [len(x) for x in batch.to_tuples()]


def test_cells_can_be_symbols_or_word_indices_and_top_k_cuts(prompt_encoder, ranked_pbmc):
    template = "Genes: {cell_sentence}."
    words = ranked_pbmc.row(0)
    symbols = prompt_encoder.vocabulary.decode(words[:10].tolist())
    by_words = prompt_encoder.encode(template, [words], top_k=10)
    by_symbols = prompt_encoder.encode(template, [[s.lower() for s in symbols]])
    assert by_words.ids == by_symbols.ids and by_words.genes_per_cell == 10


def test_text_encoder_loads_files_folders_objects_and_hf_tokenizers(pythia_tokenizer_path):
    text = "Cell sentence: HLA-DRA MT-ND3."
    by_file = TextEncoder.load(pythia_tokenizer_path).encode(text)
    assert TextEncoder.load(pythia_tokenizer_path.parent).encode(text) == by_file
    assert (
        TextEncoder.load(TextEncoder.load(pythia_tokenizer_path).tokenizer).encode(text) == by_file
    )
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(pythia_tokenizer_path.parent)
    assert TextEncoder.load(hf).encode(text) == by_file == hf(text)["input_ids"]
    with pytest.raises(TypeError):
        TextEncoder.load(42)


@pytest.mark.parametrize(
    ("template", "cells", "fields", "message"),
    [
        ("{gene_list}", [], {}, "unknown placeholder"),
        ("{cell_sentence} {multi_cell_sentences}", [["A"]], {}, "at most one"),
        ("{cell_sentence} in {organism}", [["CD3D"]], {}, "needs fields"),
        ("Hello {organism}", [["CD3D"]], {"organism": "x"}, "no cell-sentence"),
        ("{cell_sentence}", [["CD3D"], ["CD4"]], {}, "exactly one"),
        ("{cell_sentence}", [["CD3D"]], {"tisue": "x"}, "unknown template fields"),
        ("{cell_sentence", [["CD3D"]], {}, "malformed"),
    ],
)
def test_template_errors_say_what_is_wrong(template, cells, fields, message, prompt_encoder):
    with pytest.raises(TemplateError, match=message):
        prompt_encoder.encode(template, cells, **fields)


def test_encode_batch_needs_a_gene_count_for_num_genes(prompt_encoder, ranked_pbmc):
    with pytest.raises(TemplateError, match="top_k"):
        prompt_encoder.encode_batch("{num_genes}: {cell_sentence}", ranked_pbmc)
    with pytest.raises(TemplateError, match="encode"):
        prompt_encoder.encode_batch("{multi_cell_sentences}", ranked_pbmc, top_k=5)


def test_tiny_caches_stay_exact_when_they_are_cleared(pythia_tokenizer_path, gene_vocabulary):
    encoder = PromptEncoder(
        GeneTokenCache(pythia_tokenizer_path, gene_vocabulary), max_cached_texts=3
    )
    cells = RankedCells(np.arange(40, dtype=np.int32), np.array([0, 10, 25, 40]))
    template = "Top {num_genes} in a {organism} cell: {cell_sentence}.\nType:"
    for organism in ("Homo sapiens", "Mus musculus", "Homo sapiens"):
        batch = encoder.encode_batch(template, cells, top_k=12, organism=organism)
        for i in range(3):
            text = encoder.render_text(
                template, [cells.row(i)[:12]], organism=organism, num_genes=12
            )
            assert batch[i] == encoder.token_cache.encoder.encode(text)
            assert encoder.verify(template, [cells.row(i)], organism=organism).n_tokens > 10
    assert len(encoder._text_ids) <= 3


# Genes no model vocabulary holds: wide-atlas style, lower case, digits at the boundary.
OUTSIDE_GENES = ["ZZQ1", "xkcd-9", "AB12.3", "QQ7", "ZZQ1", "ORF77B"]


def test_genes_added_outside_the_vocabulary_get_full_tokenisation_ids(
    pythia_tokenizer_path, gene_vocabulary
):
    cache = GeneTokenCache(pythia_tokenizer_path, list(gene_vocabulary.symbols))
    encoder = PromptEncoder(cache)
    known = list(gene_vocabulary.symbols[:3])
    before = len(cache)
    # upper-cased once, the duplicate counted once, known genes left alone
    assert encoder.add_genes(OUTSIDE_GENES + known) == 5
    assert len(cache) == len(cache.vocabulary) == before + 5
    assert cache.vocabulary.symbols[before:] == ("ZZQ1", "XKCD-9", "AB12.3", "QQ7", "ORF77B")
    assert cache.vocabulary.n_columns == gene_vocabulary.n_columns
    assert encoder.add_genes(["zzq1"]) == 0
    text_encoder = cache.encoder
    for gene in ("ZZQ1", "XKCD-9", "ORF77B"):
        assert cache.gene_ids(gene) == tuple(text_encoder.encode(" " + gene))
    template = "The {num_genes} genes of a {organism} cell: {cell_sentence}.\nType:"
    cell = ["XKCD-9", known[0], "ZZQ1", "ZZQ1", "AB12.3"]  # duplicates kept, in order
    prompt = encoder.verify(template, [cell], organism="Homo sapiens")
    assert prompt.genes_per_cell == 5
    words = cache.vocabulary.encode(cell)
    batch = encoder.encode_batch(
        template, RankedCells(words, np.array([0, 5])), top_k=5, organism="Homo sapiens"
    )
    assert batch[0] == prompt.ids


PRINTABLE = [chr(c) for c in range(32, 127)] + ["\n", "\t"]


def test_where_the_rules_say_pythia_cuts_the_ids_concatenate(pythia_tokenizer_path):
    encoder = TextEncoder.load(pythia_tokenizer_path)
    cut_pairs = [(a, b) for a in PRINTABLE for b in PRINTABLE if encoder.cuts_between(a, b)]
    # letters, digits and symbols each cut from the other two and from whitespace
    assert 5000 < len(cut_pairs) < len(PRINTABLE) ** 2
    assert encoder.cuts_between("D", ".") and encoder.cuts_between("1", "\n")
    for a, b in cut_pairs:
        for left in (" CD3" + a, a, "x-" + a):
            for right in (b, b + ".\nThe", b + "s x" + b):
                ids = encoder.encode(left + right)
                assert ids == encoder.encode(left) + encoder.encode(right), (left, right)


@pytest.mark.parametrize(
    "left, right",
    [("D", "x"), ("1", "2"), (".", "."), ("'", "s"), (" ", "x"), ("t", "|"), ("é", "."), ("", ".")],
)
def test_where_the_rules_cannot_tell_the_answer_is_tokenise(pythia_tokenizer_path, left, right):
    assert not TextEncoder.load(pythia_tokenizer_path).cuts_between(left, right)


def test_other_pre_tokenizers_never_claim_a_cut(demo_tokenizer):
    encoder = TextEncoder.load(demo_tokenizer)
    assert not any(encoder.cuts_between(a, b) for a in PRINTABLE for b in PRINTABLE)


def test_a_wide_datasets_last_genes_cost_no_tokenising(pythia_tokenizer_path, monkeypatch):
    # wide-atlas style symbols (letters then a number) plus ones the rules cannot cut
    genes = [f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}Q{i}" for i in range(3000)]
    genes += ["AB-", "RP11-1.", "XY'", "CD3D"]
    encoder = PromptEncoder(GeneTokenCache(pythia_tokenizer_path, genes))
    rng = np.random.default_rng(0)
    words = rng.permutation(np.tile(np.arange(len(genes), dtype=np.int32), 2))[:6000]
    cells = RankedCells(np.concatenate([words, [3000, 3001, 3002]]), np.r_[0:6001:20, 6003])
    template = "Cell sentence: {cell_sentence}.\nThe cell type is:"
    text_encoder = encoder.token_cache.encoder
    encode, encode_batch = text_encoder.encode, text_encoder.encode_batch
    tokenised = []
    monkeypatch.setattr(text_encoder, "encode", lambda t: tokenised.append(t) or encode(t))
    monkeypatch.setattr(
        text_encoder, "encode_batch", lambda ts: tokenised.extend(ts) or encode_batch(ts)
    )
    batch = encoder.encode_batch(template, cells, top_k=20)
    monkeypatch.undo()
    # the glued pieces of the genes ending in '-', '.', "'", and none of a wide-atlas gene
    assert " XY'.\nThe" in tokenised
    assert not [t for t in tokenised if "Q" in t]
    for i in range(len(cells)):
        text = encoder.render_text(template, [cells.row(i)], num_genes=20)
        assert batch[i] == encode(text)
        assert encoder.encode(template, [cells.row(i)], num_genes=20).ids == batch[i]
