"""GeneVocabulary: upper-casing, collisions, Ensembl ids, human and mouse."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tokenizer_ext import (
    HUMAN,
    MOUSE,
    EnsemblIdError,
    GeneCollisionError,
    GeneVocabulary,
    InvalidGeneSymbolError,
    UnknownGeneError,
    looks_like_ensembl_id,
)
from tokenizer_ext.vocab import guess_organism


def test_symbols_are_upper_cased_in_column_order():
    vocab = GeneVocabulary(["Cd3e", "mt-Co1", "HLA-DRA", "RP11-34P13.7"])
    assert vocab.symbols == ("CD3E", "MT-CO1", "HLA-DRA", "RP11-34P13.7")
    assert vocab.column_to_word.tolist() == [0, 1, 2, 3]
    assert vocab.index("cd3e") == 0 and "Mt-co1" in vocab and "CD4" not in vocab


def test_collision_error_lists_every_colliding_name():
    with pytest.raises(GeneCollisionError) as info:
        GeneVocabulary(["Cd3e", "CD3E", "Ptprc", "PTPRC", "Lyz2"])
    assert info.value.collisions == {"CD3E": ["Cd3e", "CD3E"], "PTPRC": ["Ptprc", "PTPRC"]}
    assert "Cd3e" in str(info.value) and "on_collision='merge'" in str(info.value)


def test_merge_maps_colliding_columns_to_one_word():
    vocab = GeneVocabulary(["Cd3e", "Lyz2", "CD3E"], on_collision="merge")
    assert vocab.symbols == ("CD3E", "LYZ2")
    assert vocab.column_to_word.tolist() == [0, 1, 0]
    assert (
        len(vocab.symbols) != len(vocab.column_to_word) and vocab.n_columns == 3 and len(vocab) == 2
    )


def test_ensembl_ids_raise_an_error_that_says_to_map_to_symbols():
    names = ["ENSG00000141510", "ENSG00000012048.21", "ENSMUSG00000102693", "CD3E"]
    with pytest.raises(EnsemblIdError) as info:
        GeneVocabulary(names)
    assert "symbols" in str(info.value) and info.value.fraction == pytest.approx(0.75)
    assert info.value.examples[0] == "ENSG00000141510"


def test_a_few_unmapped_ensembl_ids_among_symbols_are_allowed():
    names = [f"GENE{i}" for i in range(9)] + ["ENSG00000141510"]
    assert len(GeneVocabulary(names)) == 10
    with pytest.raises(EnsemblIdError):
        GeneVocabulary(names, ensembl_threshold=0.05)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ENSG00000141510", True),
        ("ENSMUSG00000064370.1", True),
        ("ENST00000269305", True),
        ("ENSA", False),
        ("CD3E", False),
        ("ENSG", False),
    ],
)
def test_looks_like_ensembl_id(name, expected):
    assert looks_like_ensembl_id(name) is expected


@pytest.mark.parametrize("bad", ["", "CD3 E", "CD3E\t"])
def test_empty_or_whitespace_names_are_rejected(bad):
    with pytest.raises(InvalidGeneSymbolError):
        GeneVocabulary(["CD4", bad])


def test_organism_is_guessed_from_casing_and_can_be_given():
    assert guess_organism(["Cd3e", "Lyz2", "mt-Co1", "CD52"]) == MOUSE
    assert GeneVocabulary(["CD3E", "LYZ", "MT-CO1"]).organism == HUMAN
    assert GeneVocabulary(["CD3E"], organism=MOUSE).organism == MOUSE
    with pytest.raises(ValueError, match="organism"):
        GeneVocabulary(["CD3E"], organism="Danio rerio")


def test_encode_lists_all_unknown_genes():
    vocab = GeneVocabulary(["CD3E", "LYZ"])
    assert vocab.encode(["lyz", "CD3E"]).tolist() == [1, 0]
    with pytest.raises(UnknownGeneError) as info:
        vocab.encode(["CD3E", "foo", "BAR"])
    assert info.value.genes == ["FOO", "BAR"]


def test_from_adata_reads_raw_or_a_symbol_column():
    adata = ad.AnnData(np.ones((2, 2), dtype=np.float32))
    adata.var_names = ["ENSG00000141510", "ENSG00000012048"]
    adata.var["feature_name"] = pd.Series(["tp53", "BRCA1"], index=adata.var_names)
    adata.raw = ad.AnnData(
        np.ones((2, 3), dtype=np.float32), var=pd.DataFrame(index=["A", "b", "C"])
    )
    assert GeneVocabulary.from_adata(adata, symbols_column="feature_name").symbols == (
        "TP53",
        "BRCA1",
    )
    assert GeneVocabulary.from_adata(adata, use_raw=True).symbols == ("A", "B", "C")
    with pytest.raises(EnsemblIdError):
        GeneVocabulary.from_adata(adata)
