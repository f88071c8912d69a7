"""The text shapes C2S gives cells inside prompts and answers, and their inverse.

Source of the shapes: cell2sentence 1.2.0 ``prompt_formatter.py``: a sentence is cut to
its first k space-separated genes, and a multi-cell block is, for cell i (1-based),
``"Cell {i}:\\n" + item + ".\\n"``. The same block shape carries per-cell labels in
multi-cell label templates, so one parser splits both. This module is the only owner of
these shapes: templates, prompt ids, task inputs and answer parsers all use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: what precedes cell ``i``'s item in a multi-cell block
CELL_HEADER = "Cell {i}:\n"
#: what ends every item of a multi-cell block
CELL_END = ".\n"

# "Cell 12:" at the start of the text or of a line, with optional spaces around it (a
# line anchor, not "\n" in the pattern: the search then skips most positions, 2-3x faster
# over a prompt-long text)
_CELL_HEADER = re.compile(r"^[ \t]*Cell[ \t]+(\d+)[ \t]*:", re.IGNORECASE | re.MULTILINE)


def first_genes(sentence: str, k: int) -> str:
    """The first ``k`` genes of a space-separated cell sentence."""
    return " ".join(sentence.split(" ")[:k])


def multi_cell_text(items: Sequence[str]) -> str:
    """Join per-cell items into C2S's multi-cell text (``Cell 1:\\n...\\n``)."""
    return "".join(CELL_HEADER.format(i=i) + item + CELL_END for i, item in enumerate(items, 1))


def split_multi_cell_text(text: str) -> list[str]:
    """Split generated multi-cell text on its ``Cell N:`` headers.

    Returns
    -------
    list of str
        The text after each header up to the next, stripped of white space and of the
        trailing ``.`` that ends every item. Text before the first header is dropped.
    """
    headers = list(_CELL_HEADER.finditer(text))
    bodies = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        # the last block ends in C2S's extra ".\n." (item's "." then the answer's ".")
        bodies.append(text[header.end() : end].strip().rstrip(". \n\t"))
    return bodies
