"""The demo's tokenizer: a ByteLevel BPE, trained here, in which every gene is one token.

GPT-2's pre-tokenizer splits ``HLA-DRA`` at the hyphen and ``RP11-782C8.1`` at every
punctuation mark, so no BPE on top of it can hold such genes whole. The demo pre-splits
instead on words that may contain inner ``.``, ``-`` and ``_`` (but never end in them, so a
sentence's closing ``.`` stays apart), keeping GPT-2's other rules: a word takes the one
space before it, punctuation runs and white space are their own pieces. Genes are then
whole pieces, both as ``" GENE"`` (inside a sentence) and ``"GENE"`` (first in a line or an
answer), and the trainer is given every gene in both forms often enough to merge it whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"
PAD = "<|padding|>"
#: a word: letters/digits, with inner . - _ ; or a punctuation run; or white space
PIECES = r" ?[\p{L}\p{N}](?:[\p{L}\p{N}._\-]*[\p{L}\p{N}])?| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
#: how often each gene is shown to the trainer in each form, on top of the corpus
GENE_REPEATS = 50


def new_tokenizer() -> Tokenizer:
    """An untrained tokenizer with the demo's pipeline."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _gene_lines(genes: Sequence[str]) -> Iterable[str]:
    for _ in range(GENE_REPEATS):
        yield " ".join(genes)
        yield "\n".join(genes)


def train_tokenizer(texts: Iterable[str], genes: Sequence[str], vocab_size: int) -> Tokenizer:
    """Train the BPE on ``texts`` plus every gene in both forms.

    Raises
    ------
    ValueError
        If some gene is not a single token in both forms (raise ``vocab_size``).
    """
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterable[str]:
        yield from texts
        yield from _gene_lines(genes)

    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    split = split_genes(tokenizer, genes)
    if split:
        raise ValueError(f"{len(split)} genes are not single tokens, e.g. {split[:5]}")
    return tokenizer


def gene_forms(genes: Sequence[str]) -> list[str]:
    """Every gene as ``" GENE"`` (inside a sentence) and as ``"GENE"`` (first in a line)."""
    return [" " + g for g in genes] + list(genes)


def split_genes(tokenizer: Tokenizer, genes: Sequence[str]) -> list[str]:
    """Gene forms (`gene_forms`) that are not one token."""
    forms = gene_forms(genes)
    encodings = tokenizer.encode_batch(forms, add_special_tokens=False)
    return [form for form, enc in zip(forms, encodings, strict=True) if len(enc.ids) != 1]


def gene_token_ids(tokenizer: Tokenizer, genes: Sequence[str]) -> list[int]:
    """The token ids of every gene form (each one token, as `train_tokenizer` checks)."""
    encodings = tokenizer.encode_batch(gene_forms(genes), add_special_tokens=False)
    return sorted({enc.ids[0] for enc in encodings})


def save_tokenizer(tokenizer: Tokenizer, out_dir: Path, model_max_length: int) -> None:
    """Write ``tokenizer.json`` and the ``tokenizer_config.json`` transformers reads."""
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": PAD,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        # the generic fast class loads tokenizer.json as is; a model-specific class would
        # rebuild GPT-2's pre-tokenizer and split genes again
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": EOS, "eos_token": EOS, "unk_token": EOS, "pad_token": PAD}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
