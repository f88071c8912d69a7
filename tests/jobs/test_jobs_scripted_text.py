"""The instant engine reads prompts through `scripted_text`, not a full decode: its
answers must be the full decode's."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models

from serving.testing.fake_engine import scripted, scripted_text
from tokenizer_ext import TextEncoder
from tokenizer_ext.cell_text import multi_cell_text

PROMPTS = [
    "The following is a list of gene names ordered by descending expression level in "
    "a Homo sapiens cell. Your task is to give the cell type which this cell belongs to "
    "based on its gene expression.\nCell sentence: MALAT1 CD74 HLA-DRA.\nThe cell type "
    "corresponding to these genes is:",
    "Identify the tissue these cells came from.\n"
    + multi_cell_text(["CD3D CD3E", "LYZ S100A8", "MS4A1 CD79A"])
    + "The tissue is:",
    "Cells:\n" + multi_cell_text(["naïve CD4 — ünïcode", "日本 IL7R", "NKG7"]) + "Types:",
    "  Cell 7 : after spaces\ncell 8:\tlower case\nCELL 9:x",
]


@pytest.fixture(scope="module")
def encoder(pythia_tokenizer_dir) -> TextEncoder:
    return TextEncoder.load(pythia_tokenizer_dir)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_scripted_answers_equal_the_full_decodes(encoder, prompt):
    ids = encoder.encode(prompt)
    fast, full = scripted_text(encoder), encoder.decode
    assert fast is not full  # the byte-level path, not the fallback
    text = fast(ids)
    assert [c for c in text if c.isascii()] == [c for c in full(ids) if c.isascii()]
    assert scripted(fast)(ids) == scripted(full)(ids)


def test_answers_cover_cells_and_tissue(encoder):
    fast = scripted(scripted_text(encoder))
    assert fast(encoder.encode(PROMPTS[1])) == " peripheral blood."
    assert fast(encoder.encode(PROMPTS[2])).count("Cell ") == 3
    assert fast(encoder.encode(PROMPTS[3])).count("Cell ") == 3


def test_other_decoders_get_the_full_decode():
    vocab = {"[UNK]": 0, "Cell": 1, "1:": 2}
    encoder = TextEncoder(Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")))
    assert scripted_text(encoder) == encoder.decode
