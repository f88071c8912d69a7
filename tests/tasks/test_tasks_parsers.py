"""Parsers and the Decoder on exact strings."""

from __future__ import annotations

import pytest

from serving.core.errors import UnknownTask
from serving.core.stages import Decoder
from serving.core.tasks.parsers import (
    parse_alphabetical_genes,
    parse_cell_labels,
    parse_cells,
    parse_genes,
    parse_label,
    parse_text,
    strip_answer,
)
from serving.core.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TextResult,
)

VOCAB = frozenset({"CD3D", "CD3E", "LYZ", "CD74", "HLA-DRA", "RP11-782C8.1"})


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("CD14+ Monocyte.", "CD14+ Monocyte"),
        (" CD4+/CD25 T Reg.", "CD4+/CD25 T Reg"),
        ("B cell", "B cell"),
        ("Dendritic.\nThe cell type is", "Dendritic"),
        ("", ""),
    ],
)
def test_label(text, label):
    assert parse_label(text) == LabelResult(label=label)


def test_strip_answer_removes_one_full_stop():
    assert strip_answer("  a b.. ") == "a b."


def test_genes_cleaned_like_c2s():
    # CD3E at 0 and 3: kept once at int(mean(0, 3)) = 1; FOO dropped but holds its place
    result = parse_genes("CD3E cd3d FOO CD3E LYZ.", VOCAB)
    assert result == GeneListResult(genes=["CD3D", "CD3E", "LYZ"], n_valid=4, n_invalid=1)


def test_genes_without_vocabulary_accept_every_word():
    assert parse_genes("A B A.", None) == GeneListResult(genes=["B", "A"], n_valid=3, n_invalid=0)


def test_empty_answer_has_no_genes():
    assert parse_genes(".", VOCAB) == GeneListResult(genes=[], n_valid=0, n_invalid=0)


def test_alphabetical_genes():
    assert parse_alphabetical_genes("CD3D CD3E FOO LYZ.", VOCAB) == AlphabeticalGenesResult(
        genes=["CD3D", "CD3E", "LYZ"], n_valid=3, n_invalid=1, is_sorted=True
    )
    assert not parse_alphabetical_genes("LYZ CD3D.", VOCAB).is_sorted


def test_multi_cell_answer_split_on_cell_headers():
    text = "Cell 1:\nCD3D CD3E.\nCell 2:\nLYZ NOPE HLA-DRA RP11-782C8.1.\n."
    assert parse_cells(text, VOCAB) == CellGenesResult(
        cells=[
            GeneListResult(genes=["CD3D", "CD3E"], n_valid=2, n_invalid=0),
            GeneListResult(genes=["LYZ", "HLA-DRA", "RP11-782C8.1"], n_valid=3, n_invalid=1),
        ]
    )


def test_multi_cell_answer_with_leading_text_and_spaces():
    text = "junk\n Cell 1: CD3D.\nCell 2 :\nLYZ"
    assert [c.genes for c in parse_cells(text, VOCAB).cells] == [["CD3D"], ["LYZ"]]


def test_per_cell_labels():
    text = "Cell 1:\nCD14+ Monocyte.\nCell 2:\nCD4+/CD25 T Reg.\n."
    assert parse_cell_labels(text) == CellLabelsResult(labels=["CD14+ Monocyte", "CD4+/CD25 T Reg"])


def test_text():
    assert parse_text(" PBMCs from a donor. They are T cells.") == TextResult(
        text="PBMCs from a donor. They are T cells"
    )


def test_decoder_uses_each_tasks_parser_and_vocabulary():
    decoder = Decoder(["cd3d", "LYZ"])
    assert decoder.decode("cell_type_prediction", "B cell.") == LabelResult(label="B cell")
    assert decoder.decode("cell_generation", "CD3D X LYZ.").n_invalid == 1
    result = decoder.decode("tissue_generation", "Cell 1:\nLYZ.\n.")
    assert isinstance(result, CellGenesResult) and result.cells[0].genes == ["LYZ"]
    assert decoder.decode("cells_to_abstract", "An abstract.") == TextResult(text="An abstract")
    with pytest.raises(UnknownTask):
        decoder.decode("nope", "x")


def test_results_serialise_with_their_kind():
    from pydantic import TypeAdapter

    from serving.core.tasks import TaskResult

    adapter = TypeAdapter(TaskResult)
    result = parse_cells("Cell 1:\nCD3D.\n.", VOCAB)
    dumped = adapter.dump_python(result)
    assert dumped["kind"] == "cells"
    assert adapter.validate_python(dumped) == result


def test_the_decode_stage_parses_a_repeated_label_once_and_hands_out_copies():
    from serving.core.requests import DecodeRequest
    from serving.core.stages import DecodeStage

    decoder = Decoder(VOCAB)
    calls = []
    parse = decoder.decode

    def counted(task, text):
        calls.append(text)
        return parse(task, text)

    decoder.decode = counted
    stage = DecodeStage(decoder, encoder=None)
    label = DecodeRequest("cell_type_prediction", " B cell.\n")
    genes = DecodeRequest("cell_generation", " CD3E LYZ.")
    first, second, *lists = stage.decode([label, label, genes, genes])
    assert first.result == second.result == {"kind": "label", "label": "B cell"}
    first.result["label"] = "changed"  # a caller's edit reaches no other answer
    assert stage.decode([label])[0].result["label"] == "B cell"
    assert lists[0].result["genes"] == ["CD3E", "LYZ"]
    assert lists[0].result["genes"] is not lists[1].result["genes"]
    assert calls == [" B cell.\n", " CD3E LYZ.", " CD3E LYZ."]  # gene lists every time
