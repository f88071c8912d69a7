"""The demo checkpoint's inverse transform: C2S's fit of expression on log rank.

Fitted on the training cells only, as C2S fits it on a model's training data, and shipped
as ``expression_fit.json`` beside the weights; the decoder reads it to turn generated cell
sentences back into expression (``reconstruct_expression``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serving.core.stages import EXPRESSION_FIT_FILE
from tokenizer_ext import RankExpressionFit, fit_rank_expression


def write_expression_fit(out_dir: Path, train_rows: np.ndarray) -> RankExpressionFit:
    """Fit on pbmc68k_reduced's log-normalised ``.raw`` rows ``train_rows``; write the JSON."""
    import scanpy as sc

    cells = sc.datasets.pbmc68k_reduced()[np.sort(train_rows)]
    fit = fit_rank_expression(cells, use_raw=True)
    (out_dir / EXPRESSION_FIT_FILE).write_text(json.dumps(fit.to_dict(), indent=2) + "\n")
    return fit
