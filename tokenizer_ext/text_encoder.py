"""A thin, dependency-light wrapper over the model's tokenizer.

It accepts a ``tokenizers.Tokenizer``, a path to ``tokenizer.json`` (or the folder
holding it), or a Hugging Face fast tokenizer, so ``transformers`` stays optional.
Special tokens are never added: C2S prompts are plain completions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tokenizers

TokenizerLike = Any  # tokenizers.Tokenizer | str | os.PathLike | transformers fast tokenizer


class TextEncoder:
    """Text <-> token ids without special tokens.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        The model's tokenizer.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer):
        self.tokenizer = tokenizer
        self._joined_pairs = _pairs_joined_by_rules(tokenizer)

    @classmethod
    def load(cls, source: TokenizerLike) -> TextEncoder:
        """Wrap a tokenizer given as an object or a path.

        Parameters
        ----------
        source : tokenizers.Tokenizer, TextEncoder, path or transformers tokenizer
            A path may name ``tokenizer.json`` or a folder containing it.
        """
        if isinstance(source, TextEncoder):
            return source
        if isinstance(source, tokenizers.Tokenizer):
            return cls(source)
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if path.is_dir():
                path = path / "tokenizer.json"
            return cls(tokenizers.Tokenizer.from_file(str(path)))
        backend = getattr(source, "backend_tokenizer", None)
        if isinstance(backend, tokenizers.Tokenizer):
            return cls(backend)
        raise TypeError(
            "expected a tokenizers.Tokenizer, a tokenizer.json path or a fast "
            f"transformers tokenizer, got {type(source).__name__}"
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of several texts.

        One by one, not through ``Tokenizer.encode_batch``: on short texts (genes, a gene
        and its neighbouring prompt text) its thread pool costs more CPU than it saves,
        50,000 such texts took 0.70 s of CPU that way and 0.48 s one by one.
        """
        encode = self.tokenizer.encode
        return [encode(text, add_special_tokens=False).ids for text in texts]

    def cuts_between(self, left: str, right: str) -> bool:
        """Whether any text ending in the character ``left`` followed by any text starting
        with the character ``right`` has the two texts' ids, concatenated, as its ids.

        Known without tokenising only for GPT-2's byte-level pre-tokenizer (its regex),
        which starts a new pre-token where a run of letters, of digits or of other
        symbols ends; BPE then never merges across. ``False`` means: tokenise to know.
        """
        if self._joined_pairs is None or len(left) != 1 or len(right) != 1:
            return False
        if not (left.isascii() and right.isascii()):
            return False
        kind = _ascii_kind(left)
        # "'" starts contractions ("'s") with the letters after it
        return (
            kind != "space"
            and left != "'"
            and kind != _ascii_kind(right)
            and ((left, right) not in self._joined_pairs)
        )

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (special tokens skipped)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def _ascii_kind(char: str) -> str:
    if char.isalpha():
        return "letter"
    if char.isdigit():
        return "digit"
    if char.isspace():
        return "space"
    return "symbol"


def _pairs_joined_by_rules(tokenizer: tokenizers.Tokenizer) -> set[tuple[str, str]] | None:
    """Adjacent characters that the tokenizer's added tokens hold (they match before the
    pre-tokenizer runs), or ``None`` when its pre-tokenizer is not GPT-2's regex."""
    pre = tokenizer.pre_tokenizer
    byte_level_regex = (
        isinstance(pre, tokenizers.pre_tokenizers.ByteLevel)
        and pre.use_regex
        and not pre.add_prefix_space
    )
    normalizer = tokenizer.normalizer
    if not byte_level_regex or not isinstance(tokenizer.model, tokenizers.models.BPE):
        return None
    if normalizer is not None and not isinstance(normalizer, tokenizers.normalizers.NFC):
        return None  # NFC leaves ASCII alone; other normalizers may not
    added = tokenizer.get_added_tokens_decoder().values()
    if any(t.single_word or t.lstrip or t.rstrip for t in added):
        return None  # these match by their neighbours
    return {pair for t in added for pair in zip(t.content, t.content[1:], strict=False)}
