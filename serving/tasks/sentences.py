"""Expression of one request cell -> cell sentence, through tokenizer_ext's ranking."""

from __future__ import annotations

from collections.abc import Sequence


def expression_to_sentence(genes: Sequence[str], values: Sequence[float]) -> str:
    """Rank one cell's non-zero genes by descending value into a cell sentence.

    Ties are broken as C2S does for the first cell of a dataset (numpy seeded with 42,
    then a shuffle before a stable sort), so a cell sent alone gets the sentence C2S
    would give it.
    """
    import anndata
    import numpy as np
    import pandas as pd

    from tokenizer_ext import cell_sentences

    adata = anndata.AnnData(
        X=np.asarray(values, dtype=np.float32).reshape(1, -1),
        var=pd.DataFrame(index=pd.Index(list(genes), dtype=str)),
    )
    (sentence,) = cell_sentences(adata, tie_break="c2s", seed=42)
    if not sentence:
        raise ValueError("the cell has no non-zero expression value")
    return sentence
