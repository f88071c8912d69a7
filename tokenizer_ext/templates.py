"""C2S prompt templates: ``str.format`` text with cell-sentence placeholders.

A template is split at its cell-sentence placeholder so that the fixed text and
the genes can be tokenised separately (see :mod:`tokenizer_ext.prompt_ids`).
Multi-cell text follows C2S (:mod:`tokenizer_ext.cell_text`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenizer_ext.cell_text import CELL_END, CELL_HEADER
from tokenizer_ext.errors import TemplateError

CELL_SENTENCE = "cell_sentence"
MULTI_CELL_SENTENCES = "multi_cell_sentences"
SENTENCE_FIELDS = (CELL_SENTENCE, MULTI_CELL_SENTENCES)
TEMPLATE_FIELDS = (
    "num_genes",
    "organism",
    CELL_SENTENCE,
    "cell_type",
    "num_cells",
    MULTI_CELL_SENTENCES,
    "tissue",
    "abstract",
)


def placeholders(template: str) -> frozenset[str]:
    """The ``{name}`` fields a ``str.format`` template uses: any plain names, C2S's
    (`TEMPLATE_FIELDS`) or a task's own."""
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if not name.isidentifier():
                raise TemplateError(f"placeholder {{{name}}} is not a plain name in {template!r}")
            names.add(name)
    return frozenset(names)


@dataclass(frozen=True)
class _Placeholder:
    name: str
    spec: str
    conversion: str | None


class PromptTemplate:
    """A parsed C2S template.

    Parameters
    ----------
    text : str
        ``str.format`` text using the placeholders in ``TEMPLATE_FIELDS``; at most
        one of ``{cell_sentence}`` / ``{multi_cell_sentences}``.

    Attributes
    ----------
    text : str
        The template as given.
    fields : frozenset of str
        Placeholders used.
    sentence_field : str or None
        The cell-sentence placeholder, if any.
    """

    def __init__(self, text: str):
        self.text = text
        self._parts = _parse(text)
        names = [p.name for p in self._parts if isinstance(p, _Placeholder)]
        self.fields = frozenset(names)
        sentence = [n for n in names if n in SENTENCE_FIELDS]
        if len(sentence) > 1:
            raise TemplateError(f"template uses cell-sentence placeholders {sentence}; at most one")
        self.sentence_field: str | None = sentence[0] if sentence else None

    def __repr__(self) -> str:
        return f"PromptTemplate({self.text!r})"

    def resolve_fields(self, cells: Sequence[Sequence[Any]], fields: Mapping[str, Any]) -> dict:
        """Check ``cells`` against the placeholder and fill ``num_genes``/``num_cells``.

        ``num_genes`` defaults to the longest cell and ``num_cells`` to the number
        of cells, as C2S fills them.

        Raises
        ------
        TemplateError
            Unknown or missing fields, or a cell count the placeholder cannot take.
        """
        unknown = set(fields) - set(TEMPLATE_FIELDS)
        if unknown:
            raise TemplateError(
                f"unknown template fields {sorted(unknown)}; known: {TEMPLATE_FIELDS}"
            )
        given_sentences = set(fields) & set(SENTENCE_FIELDS)
        if given_sentences:
            raise TemplateError(f"pass genes through `cells`, not {sorted(given_sentences)}")
        self._check_cell_count(len(cells))
        values = dict(fields)
        if cells:
            values.setdefault("num_genes", max(len(c) for c in cells))
            values.setdefault("num_cells", len(cells))
        missing = sorted(self.fields - set(values) - set(SENTENCE_FIELDS))
        if missing:
            raise TemplateError(f"template needs fields {missing}")
        return values

    def text_gaps(self, n_cells: int, values: Mapping[str, Any]) -> list[str]:
        """The fixed text around each cell's genes: ``n_cells + 1`` strings.

        The rendered prompt is ``gaps[0] + genes(cell 1) + gaps[1] + ... + gaps[n]``
        where ``genes(cell)`` is the cell's symbols joined by single spaces.
        """
        before, after = self._format_around_sentence(values)
        if self.sentence_field is None:
            return [before]
        if self.sentence_field == CELL_SENTENCE:
            return [before, after]
        gaps = [before + CELL_HEADER.format(i=1)]
        gaps += [CELL_END + CELL_HEADER.format(i=i) for i in range(2, n_cells + 1)]
        gaps.append(CELL_END + after)
        return gaps

    def render(self, cells: Sequence[Sequence[str]] = (), **fields: Any) -> str:
        """The prompt text, as C2S's ``str.format`` would produce it.

        Parameters
        ----------
        cells : sequence of sequence of str
            Each cell's gene symbols, already ranked and cut to top-k.
        **fields
            Values of the other placeholders (``organism``, ``cell_type``...).
        """
        values = self.resolve_fields(cells, fields)
        gaps = self.text_gaps(len(cells), values)
        pieces = [gaps[0]]
        for cell, gap in zip(cells, gaps[1:], strict=True):
            pieces += [" ".join(cell), gap]
        return "".join(pieces)

    def _check_cell_count(self, n_cells: int) -> None:
        if self.sentence_field is None and n_cells:
            raise TemplateError("template has no cell-sentence placeholder but cells were given")
        if self.sentence_field == CELL_SENTENCE and n_cells != 1:
            raise TemplateError(f"{{cell_sentence}} takes exactly one cell, got {n_cells}")
        if self.sentence_field == MULTI_CELL_SENTENCES and n_cells < 1:
            raise TemplateError("{multi_cell_sentences} needs at least one cell")

    def _format_around_sentence(self, values: Mapping[str, Any]) -> tuple[str, str]:
        before: list[str] = []
        after: list[str] = []
        target = before
        for part in self._parts:
            if isinstance(part, str):
                target.append(part)
            elif part.name in SENTENCE_FIELDS:
                target = after
            else:
                target.append(_format_value(values[part.name], part))
        return "".join(before), "".join(after)


def _parse(text: str) -> list[str | _Placeholder]:
    parts: list[str | _Placeholder] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            raise TemplateError(f"unknown placeholder {{{name}}}; known: {TEMPLATE_FIELDS}")
        if name in SENTENCE_FIELDS and (spec or conversion):
            raise TemplateError(f"{{{name}}} takes no format spec or conversion")
        parts.append(_Placeholder(name, spec or "", conversion))
    return parts


def _format_value(value: Any, placeholder: _Placeholder) -> str:
    if placeholder.conversion == "r":
        value = repr(value)
    elif placeholder.conversion == "s":
        value = str(value)
    elif placeholder.conversion == "a":
        value = ascii(value)
    return format(value, placeholder.spec)
