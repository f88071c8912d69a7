"""The text shapes C2S gives cells inside prompts and answers, and their inverse.

Source of the shapes: cell2sentence 1.2.0 ``prompt_formatter.py``: a sentence is cut to
its first k space-separated genes, and a multi-cell block is, for cell i (1-based),
``"Cell {i}:\\n" + item + ".\\n"``. The same block shape carries per-cell labels in this
project's experimental multi-cell templates, so one parser splits both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# "Cell 12:" at the start of the text or of a line, with optional spaces around it
_CELL_HEADER = re.compile(r"(?:^|\n)[ \t]*Cell[ \t]+(\d+)[ \t]*:", re.IGNORECASE)


def first_genes(sentence: str, k: int) -> str:
    """The first ``k`` genes of a space-separated cell sentence."""
    return " ".join(sentence.split(" ")[:k])


def cell_blocks(items: Sequence[str]) -> str:
    """Join per-cell items into C2S's multi-cell text (``Cell 1:\\n...\\n``)."""
    return "".join(f"Cell {i}:\n{item}.\n" for i, item in enumerate(items, start=1))


def split_cell_blocks(text: str) -> list[tuple[int, str]]:
    """Split generated multi-cell text on its ``Cell N:`` headers.

    Returns
    -------
    list of (number, body)
        The number each header gives and the text up to the next header, stripped of
        white space and of the trailing ``.`` that ends every item. Text before the first
        header is dropped.
    """
    headers = list(_CELL_HEADER.finditer(text))
    blocks = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[header.end() : end].strip()
        # the last block ends in C2S's extra ".\n." (item's "." then the answer's ".")
        body = body.rstrip(". \n\t")
        blocks.append((int(header.group(1)), body))
    return blocks
