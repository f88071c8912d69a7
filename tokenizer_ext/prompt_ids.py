"""Render a C2S template straight to token ids, exactly as full tokenisation would.

The rendered prompt is cut at *split points*: a single space whose neighbours are
not whitespace. A GPT-2 style byte-level pre-tokenizer always starts a new
pre-token there and matches the rest of the text as if it began at that space, so
the ids of the pieces concatenate to the ids of the whole. Every gene of a cell
sentence is such a piece (``" " + GENE``), read from :class:`GeneTokenCache`.

Only the genes touching the template's fixed text need care: ``"...sentence: "``
ends with a split point, so the first gene is a plain cached piece, but the last
gene is glued to the text up to the next split point (``" CD3D.\\nThe"``), and in
multi-cell prompts the first gene of each cell is glued to ``" 2:\\n"``. Those
boundary pieces are tokenised once and cached, except where the tokenizer's rules
alone say that it cuts between the gene and the text after it
(:meth:`TextEncoder.cuts_between`: GPT-2's regex cuts ``" CD3D" | ".\\nThe"``); the gene
then keeps its cached ids, and a wide dataset's thousands of last genes cost no
tokenising. :meth:`PromptEncoder.verify` compares against full tokenisation; tests
run it over every public template.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenizer_ext.errors import TemplateError, TokenizationMismatchError
from tokenizer_ext.prompt_pieces import PromptBatch, SegmentTable, layout_gap
from tokenizer_ext.ranking import RankedCells
from tokenizer_ext.templates import CELL_SENTENCE, PromptTemplate
from tokenizer_ext.token_cache import GeneTokenCache, _as_words

Cells = Sequence[Sequence[str] | Sequence[int] | np.ndarray]


@dataclass(frozen=True)
class PromptIds:
    """Token ids of one prompt.

    Attributes
    ----------
    ids : list of int
        The prompt's token ids (no special tokens).
    n_cells : int
        Cells in the prompt.
    genes_per_cell : int
        Genes of the longest cell.
    """

    ids: list[int]
    n_cells: int
    genes_per_cell: int

    @property
    def n_tokens(self) -> int:
        """Prompt length in tokens."""
        return len(self.ids)


class PromptEncoder:
    """Token ids of rendered templates, built from cached pieces.

    Parameters
    ----------
    token_cache : GeneTokenCache
        Gene ids for the model's tokenizer and vocabulary.
    max_cached_texts : int
        Bound on cached text pieces (the cache is cleared when exceeded).
    """

    def __init__(self, token_cache: GeneTokenCache, *, max_cached_texts: int = 200_000):
        self.token_cache = token_cache
        self.vocabulary = token_cache.vocabulary
        self._max_cached_texts = max_cached_texts
        self._text_ids: dict[str, tuple[int, ...]] = {}
        self._symbols = np.asarray(self.vocabulary.symbols, dtype=object)
        self._cuts_before: dict[str, np.ndarray] = {}
        self._templates: dict[str, PromptTemplate] = {}
        self._table = self._new_table()
        # A batch's segment ids refer to one table, which new genes and new text pieces
        # change: threads (Ray Serve runs sync replica methods in a pool) take turns.
        self._table_lock = threading.RLock()

    def add_genes(self, symbols: Sequence[str]) -> int:
        """Cache genes outside the vocabulary (:meth:`GeneTokenCache.add_genes`)."""
        with self._table_lock:
            added = self.token_cache.add_genes(symbols)
            if added:
                # Segment ids of text pieces follow the gene words: renumber from a new table.
                self._symbols = np.asarray(self.vocabulary.symbols, dtype=object)
                self._cuts_before.clear()
                self._table = self._new_table()
            return added

    def template(self, template: str | PromptTemplate) -> PromptTemplate:
        """Parsed template (parsed once per text)."""
        if isinstance(template, PromptTemplate):
            return template
        parsed = self._templates.get(template)
        if parsed is None:
            if len(self._templates) >= 1024:  # user templates must not grow it forever
                self._templates.clear()
            parsed = self._templates[template] = PromptTemplate(template)
        return parsed

    def text_ids(self, text: str) -> tuple[int, ...]:
        """Ids of a fixed text piece, cached."""
        ids = self._text_ids.get(text)
        if ids is None:
            if len(self._text_ids) >= self._max_cached_texts:
                self._text_ids.clear()
            ids = self._text_ids[text] = tuple(self.token_cache.encoder.encode(text))
        return ids

    def render_text(self, template: str | PromptTemplate, cells: Cells = (), **fields: Any) -> str:
        """The prompt as text; ``cells`` may hold symbols or word indices."""
        symbol_cells = [self.vocabulary.decode(_as_words(self.vocabulary, c)) for c in cells]
        return self.template(template).render(symbol_cells, **fields)

    def encode(
        self,
        template: str | PromptTemplate,
        cells: Cells = (),
        *,
        top_k: int | None = None,
        **fields: Any,
    ) -> PromptIds:
        """Token ids of one prompt.

        Parameters
        ----------
        template : str or PromptTemplate
            A C2S ``model_input`` (or ``response``) template.
        cells : sequence of (sequence of str or int)
            Each cell's ranked genes, as symbols or word indices; one cell for
            ``{cell_sentence}``, any number for ``{multi_cell_sentences}``.
        top_k : int, optional
            Cut every cell to its first ``top_k`` genes (C2S top-k at prompt time).
        **fields
            ``organism``, ``cell_type``, ``tissue``, ``abstract``...; ``num_genes``
            defaults to the longest cell and ``num_cells`` to ``len(cells)``.

        Returns
        -------
        PromptIds
        """
        parsed = self.template(template)
        words = [_as_words(self.vocabulary, c)[:top_k] for c in cells]
        values = parsed.resolve_fields(words, fields)
        gaps = parsed.text_gaps(len(words), values)
        ids = self._assemble(gaps, words)
        if ids is None:
            ids = list(self.text_ids(parsed.render(self._decode_cells(words), **values)))
        genes = max((len(w) for w in words), default=0)
        return PromptIds(ids, n_cells=len(words), genes_per_cell=genes)

    def encode_batch(
        self,
        template: str | PromptTemplate,
        ranked: RankedCells,
        *,
        top_k: int | None = None,
        **fields: Any,
    ) -> PromptBatch:
        """Token ids of one single-cell prompt per ranked cell, vectorised.

        Parameters
        ----------
        template : str or PromptTemplate
            A template with ``{cell_sentence}``.
        ranked : RankedCells
            Ranked cells (e.g. :attr:`RankedChunk.ranked`).
        top_k : int, optional
            Genes per cell; also the default ``num_genes``.
        **fields
            Other placeholder values, the same for every prompt.

        Returns
        -------
        PromptBatch
        """
        parsed = self.template(template)
        if parsed.sentence_field != CELL_SENTENCE:
            raise TemplateError("encode_batch takes {cell_sentence} templates; use encode()")
        ranked = ranked.truncate(top_k)
        with self._table_lock:
            return self._encode_batch(parsed, ranked, top_k, fields)

    def _encode_batch(
        self, parsed: PromptTemplate, ranked: RankedCells, top_k: int | None, fields: dict
    ) -> PromptBatch:
        if len(self._table.extra_ids) >= self._max_cached_texts:
            # Only between batches: segment ids of a batch refer to one table.
            self._table = self._new_table()
        if "num_genes" in parsed.fields and "num_genes" not in fields:
            if top_k is None:
                raise TemplateError("pass top_k or num_genes: the template states the gene count")
            fields = {**fields, "num_genes": top_k}
        values = parsed.resolve_fields([[]], fields)
        gap_before, gap_after = parsed.text_gaps(1, values)
        segments, seg_offsets = self._batch_segments(parsed, values, gap_before, gap_after, ranked)
        return self._gather(segments, seg_offsets)

    def verify(self, template: str | PromptTemplate, cells: Cells = (), **fields: Any) -> PromptIds:
        """:meth:`encode`, checked against tokenising the rendered text in one go.

        Raises
        ------
        TokenizationMismatchError
            With the first differing position.
        """
        prompt = self.encode(template, cells, **fields)
        text = self.render_text(template, cells, **fields)
        expected = self.token_cache.encoder.encode(text)
        if prompt.ids != expected:
            raise TokenizationMismatchError(_describe_mismatch(prompt.ids, expected, text))
        return prompt

    # -- assembly ---------------------------------------------------------------

    def _assemble(self, gaps: list[str], words: list[list[int]]) -> list[int] | None:
        """Concatenate piece ids; ``None`` when some boundary cannot be cut."""
        n_runs = len(words)
        layouts = [layout_gap(g, i > 0, i < n_runs) for i, g in enumerate(gaps)]
        if any(not lay.splittable for lay in layouts) or any(not w for w in words):
            return None
        gene_ids = self.token_cache._gene_ids
        ids = list(self.text_ids(layouts[0].middle))
        for run, (before, after) in enumerate(itertools.pairwise(layouts)):
            run_words = words[run]
            ids += self._first_gene_ids(before.tail, run_words, after.head)
            for w in run_words[1:-1]:
                ids += gene_ids[w]
            if len(run_words) > 1:
                ids += self._last_gene_ids(run_words[-1], after.head)
            ids += self.text_ids(after.middle)
        return ids

    def _first_gene_ids(self, tail: str, run_words: list[int], head: str) -> tuple[int, ...]:
        symbol = self._symbols[run_words[0]]
        if len(run_words) == 1:
            if tail == " " and not head:
                return self.token_cache._gene_ids[run_words[0]]
            return self.text_ids(tail + symbol + head)
        if tail == " ":
            return self.token_cache._gene_ids[run_words[0]]
        return self.text_ids(tail + symbol)

    def _last_gene_ids(self, word: int, head: str) -> tuple[int, ...]:
        if not head:
            return self.token_cache._gene_ids[word]
        if self._cut_before(head)[word]:
            return self.token_cache._gene_ids[word] + self.text_ids(head)
        return self.text_ids(" " + self._symbols[word] + head)

    def _cut_before(self, head: str) -> np.ndarray:
        """Per gene word: whether the tokenizer cuts between the gene and ``head``, so the
        gene keeps its cached ids and ``head`` its own (no boundary piece to tokenise)."""
        cuts = self._cuts_before.get(head)
        if cuts is None:
            if len(self._cuts_before) >= 64:
                self._cuts_before.clear()
            encoder, first = self.token_cache.encoder, head[:1]
            by_char = {c: encoder.cuts_between(c, first) for c in {s[-1:] for s in self._symbols}}
            cuts = np.fromiter((by_char[s[-1:]] for s in self._symbols), bool, len(self._symbols))
            self._cuts_before[head] = cuts
        return cuts

    def _decode_cells(self, words: list[list[int]]) -> list[list[str]]:
        return [self.vocabulary.decode(w) for w in words]

    # -- vectorised single-cell batches -------------------------------------------

    def _batch_segments(
        self,
        parsed: PromptTemplate,
        values: Mapping[str, Any],
        gap_before: str,
        gap_after: str,
        ranked: RankedCells,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Segment ids per prompt: middle, genes (boundaries swapped), middle."""
        before = layout_gap(gap_before, False, True)
        after = layout_gap(gap_after, True, False)
        lengths = ranked.lengths
        segments = ranked.words.astype(np.int64)
        first, last = ranked.offsets[:-1], ranked.offsets[1:] - 1
        many, single = lengths >= 2, lengths == 1
        if before.tail != " ":
            segments[first[many]] = self._boundary_segments(before.tail, segments[first[many]], "")
        closing = np.full(len(lengths), self._text_segment(after.middle), dtype=np.int64)
        if after.head:
            # A gene the tokenizer cuts from the text after it keeps its own segment, and the
            # text after it is tokenised whole; the others are glued to it.
            cut = self._cut_before(after.head)[segments[last[many]]]
            glued = last[many][~cut]
            segments[glued] = self._boundary_segments(" ", segments[glued], after.head)
            closing[np.flatnonzero(many)[cut]] = self._text_segment(gap_after)
        if before.tail != " " or after.head:
            segments[first[single]] = self._boundary_segments(
                before.tail, segments[first[single]], after.head
            )
        out_offsets = ranked.offsets + 2 * np.arange(len(lengths) + 1)
        out = np.empty(out_offsets[-1], dtype=np.int64)
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        out[np.arange(len(segments)) + 2 * row_of + 1] = segments
        out[out_offsets[:-1]] = self._text_segment(before.middle)
        out[out_offsets[1:] - 1] = closing
        for row in np.flatnonzero(lengths == 0).tolist():
            # An empty sentence merges the two gaps: tokenise the whole prompt.
            out[out_offsets[row]] = self._text_segment(parsed.render([[]], **values))
            out[out_offsets[row] + 1] = self._text_segment("")
        return out, out_offsets

    def _boundary_segments(self, prefix: str, words: np.ndarray, suffix: str) -> np.ndarray:
        if words.size == 0:
            return words
        unique, inverse = np.unique(words, return_inverse=True)
        texts = [prefix + s + suffix for s in self._symbols[unique].tolist()]
        self._cache_texts(texts)
        seg_ids = np.fromiter((self._text_segment(t) for t in texts), np.int64, len(texts))
        return seg_ids[inverse]

    def _cache_texts(self, texts: list[str]) -> None:
        """Tokenise the texts not cached yet in one call: a wide dataset meets thousands
        of new boundary pieces (last gene + following text) in its first batches."""
        table, cached = self._table.extra_index, self._text_ids
        new = [t for t in dict.fromkeys(texts) if t not in table and t not in cached]
        if len(new) < 2 or len(cached) + len(new) > self._max_cached_texts:
            return  # one text, or a full cache: text_ids tokenises (and clears) as before
        encoded = self.token_cache.encoder.encode_batch(new)
        cached.update(zip(new, map(tuple, encoded), strict=True))

    def _text_segment(self, text: str) -> int:
        seg = self._table.extra_index.get(text)
        if seg is None:
            seg = self._table.add(text, self.text_ids(text))
        return seg

    def _gather(self, segments: np.ndarray, seg_offsets: np.ndarray) -> PromptBatch:
        flat, starts, seg_lengths = self._table.arrays()
        lengths = seg_lengths[segments]
        ends = np.cumsum(lengths)
        prompt_offsets = np.zeros(len(seg_offsets), dtype=np.int64)
        if len(lengths):
            prompt_offsets[1:] = ends[seg_offsets[1:] - 1]
        shift = starts[segments] - (ends - lengths)
        gather = np.repeat(shift, lengths) + np.arange(int(prompt_offsets[-1]), dtype=np.int64)
        return PromptBatch(flat[gather], prompt_offsets)

    def _new_table(self) -> SegmentTable:
        return SegmentTable(self.token_cache.token_ids, self.token_cache.token_offsets)


def _describe_mismatch(got: list[int], expected: list[int], text: str) -> str:
    pos = next(
        (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
        min(len(got), len(expected)),
    )
    return (
        f"piecewise ids differ from full tokenisation at token {pos} "
        f"(got {got[pos : pos + 5]}, expected {expected[pos : pos + 5]}; "
        f"lengths {len(got)} vs {len(expected)}) for text {text[:120]!r}..."
    )
