"""The demo checkpoint's inverse transform: fitted on its training cells, read by the decoder."""

from __future__ import annotations

import json

import pytest

from serving.ray_serve.config import DEMO_MODEL_DIR


def test_the_shipped_fit_is_the_fit_of_the_training_cells(tmp_path):
    from models.training.dataset import load_demo_data
    from models.training.expression_fit import write_expression_fit

    fit = write_expression_fit(tmp_path, load_demo_data().train)
    assert json.loads((DEMO_MODEL_DIR / "expression_fit.json").read_text()) == fit.to_dict()
    assert fit.n_cells == 560
    # C2S reports r^2 about 0.9 on log-normalised PBMCs: expression falls with log rank
    assert fit.slope < 0 and fit.r_squared > 0.85


def test_the_decoder_turns_generated_genes_back_into_expression():
    from serving.core.stages import DecodeStage

    stage = DecodeStage.from_model(DEMO_MODEL_DIR)
    shipped = json.loads((DEMO_MODEL_DIR / "expression_fit.json").read_text())
    assert stage.fit is not None
    assert (stage.fit.slope, stage.fit.intercept) == (shipped["slope"], shipped["intercept"])
    assert stage.fit.predict([0, 9]) == pytest.approx(
        [shipped["intercept"], shipped["intercept"] + shipped["slope"]]
    )
