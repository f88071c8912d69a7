"""The training loss's weights: the answer in full, the prompt at its weight, padding never."""

from __future__ import annotations

import pytest

from models.training.tokenizer import gene_token_ids
from models.training.train import Encoded, collate

torch = pytest.importorskip("torch")

PAD = 9


def _weights(prompt_targets=None) -> list[list[float]]:
    batch = [Encoded(prompt=[1, 2, 3, 4], answer=[5, 0]), Encoded(prompt=[2, 4], answer=[0])]
    targets = None if prompt_targets is None else torch.tensor(prompt_targets)
    ids, mask, weights = collate(batch, PAD, 0.5, targets)
    assert ids.tolist() == [[1, 2, 3, 4, 5, 0], [2, 4, 0, PAD, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    return weights.tolist()


def test_the_prompt_is_scored_at_its_weight_and_the_answer_in_full():
    # weights[t] scores token t + 1: prompt targets 2, 3, 4 then answer targets 5, EOS
    assert _weights() == [[0.5, 0.5, 0.5, 1.0, 1.0], [0.5, 1.0, 0.0, 0.0, 0.0]]


def test_prompt_targets_limit_the_prompt_loss_to_those_tokens():
    # only targets 2 and 4 of the prompts count; the answer is scored whatever it holds
    assert _weights([2, 4]) == [[0.5, 0.0, 0.5, 1.0, 1.0], [0.5, 1.0, 0.0, 0.0, 0.0]]
    assert _weights([7]) == [[0.0, 0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.0]]


def test_gene_tokens_are_both_forms_of_every_gene():
    from models.training.tokenizer import train_tokenizer

    genes = ["CD3D", "HLA-DRA", "RP11-782C8.1"]
    tokenizer = train_tokenizer(["Cell type: CD4 T cell. Genes: CD3D HLA-DRA"], genes, 300)
    ids = gene_token_ids(tokenizer, genes)
    forms = [" " + g for g in genes] + genes
    assert ids == sorted(tokenizer.token_to_id(tokenizer.encode(f).tokens[0]) for f in forms)
    assert len(ids) == 6
    words = tokenizer.encode(" cell type").ids
    assert not set(words) & set(ids)


def test_a_pilot_recorded_before_a_switch_existed_ran_with_it_off(tmp_path):
    import json
    from dataclasses import asdict

    from models.training.pilots import changed_settings, summarise
    from models.training.train import TrainSettings

    settings = asdict(TrainSettings()) | {"validation_cells": 112}
    del settings["prompt_loss_genes_only"]
    record = {"settings": settings, "train_cells": 448, "held_out_curve": [], "seconds_per_step": 1}
    (tmp_path / "training.json").write_text(json.dumps(record))
    pilot = summarise(tmp_path)
    assert pilot["settings"]["prompt_loss_genes_only"] is False
    switched_on = TrainSettings().prompt_loss_genes_only
    assert ("prompt_loss_genes_only" in changed_settings(pilot)) == switched_on


def test_cell_frames_are_the_tokens_around_genes_in_multi_cell_text():
    from models.training.tokenizer import train_tokenizer
    from models.training.train import TrainSettings, cell_frame_token_ids, prompt_target_ids

    genes = ["CD3D", "HLA-DRA", "LYZ"]
    tokenizer = train_tokenizer(["Cell 1:\nLYZ CD3D.\n"], genes, 300)
    frames = cell_frame_token_ids(tokenizer, genes)
    words = {tokenizer.id_to_token(i) for i in frames}
    assert {"Cell", ":", "Ċ", "."} <= words
    assert not set(frames) & set(gene_token_ids(tokenizer, genes))
    assert prompt_target_ids(tokenizer, genes, TrainSettings()) is None
    genes_only = TrainSettings(prompt_loss_genes_only=True)
    assert prompt_target_ids(tokenizer, genes, genes_only) == gene_token_ids(tokenizer, genes)
    framed = TrainSettings(prompt_loss_genes_only=True, prompt_loss_cell_frames=True)
    assert prompt_target_ids(tokenizer, genes, framed) == sorted(
        {*gene_token_ids(tokenizer, genes), *frames}
    )


def test_a_pilot_shows_its_engine_scores_on_its_validation_cells(tmp_path):
    import json
    from dataclasses import asdict

    from models.training.pilots import pilot_table, summarise
    from models.training.train import TrainSettings

    settings = asdict(TrainSettings()) | {"validation_cells": 112}
    curve = [{"step": 1600, "answer_loss": 0.12, "greedy_exact": 0.8}]
    record = {"settings": settings, "train_cells": 448, "held_out_curve": curve}
    (tmp_path / "training.json").write_text(json.dumps(record))
    assert "engine" not in summarise(tmp_path)
    # no recorded precision: it asked for bf16, and ran it before autocast was recorded
    assert pilot_table([summarise(tmp_path)]).endswith("| none | bf16 | 1600 | 0.120 | 80.0% | - |")
    (tmp_path / "training.json").write_text(json.dumps(record | {"autocast": "fp32"}))
    assert "| none | fp32 | 1600 |" in pilot_table([summarise(tmp_path)])
    tasks = {"cell_generation": {"valid": 0.95}, "abstract_to_cells": {"valid": 0.9}}
    metrics = {"cells": "validation", "cell_type_accuracy": 0.8214, "validity_examples": 100}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics | {"tasks": tasks}))
    pilot = summarise(tmp_path)
    assert pilot["engine"]["invalid"] == {"cell_generation": 5, "abstract_to_cells": 10}
    assert pilot_table([pilot]).endswith("| 80.0% | 82.1%, 15 of 200 |")
    (tmp_path / "metrics.json").write_text(json.dumps(metrics | {"cells": "held_out"}))
    with pytest.raises(ValueError, match="validation cells"):
        summarise(tmp_path)


def _scored(name: str, loss: float, **invalid: int) -> dict:
    counts = {"multi_cell_generation": 0, "abstract_to_cells": 0, "cell_generation": 0}
    counts.update(invalid)
    engine = {"cell_type_accuracy": 0.8, "invalid": counts, "examples": 300}
    return {"name": name, "settings": {}, "curve": [{"answer_loss": loss}], "engine": engine}


def test_the_recipe_rule_picks_the_least_invalid_pilot_within_the_loss_margin():
    from models.training.pilots import RecipeRule

    rule = RecipeRule("base", 0.003, ("multi_cell_generation",))
    base = _scored("base", 0.120, multi_cell_generation=4, cell_generation=6)
    pilots = [
        base,
        _scored("lossy", 0.1231, cell_generation=1),  # 0.0031 above the baseline
        _scored("guarded", 0.118, multi_cell_generation=5),  # fewer in all, one task worse
        _scored("fair", 0.123, multi_cell_generation=4, cell_generation=3),
        _scored("best", 0.121, multi_cell_generation=1, cell_generation=2),
        {"name": "unscored", "curve": [{"answer_loss": 0.1}]},
    ]
    assert [p["name"] for p in pilots if rule.passes(p, base)] == ["fair", "best"]
    assert rule.choose(pilots)["name"] == "best"
    assert "Passing: fair, best. Chosen: best, 3 of 300 invalid against 10 for base" in (
        rule.describe(pilots)
    )
    with pytest.raises(ValueError, match="no pilot passes"):
        rule.choose([base, pilots[1]])
    with pytest.raises(ValueError, match="baseline pilot base"):
        rule.choose(pilots[1:])


def test_the_rule_reports_the_chosen_recipe_under_other_seeds():
    from models.training.pilots import RecipeRule

    rule = RecipeRule("base", 0.003, ())
    base = _scored("base", 0.120, cell_generation=9)
    best = _scored("best", 0.121, cell_generation=2)
    recipe = {"data_seed": 1, "dropout": 0.1, "validation_cells": 112}
    base = {**base, "settings": {**recipe, "dropout": 0.0, "data_seed": 2}}
    best = {**best, "settings": recipe}
    reseeded = {
        **_scored("again", 0.125, cell_generation=7),
        "settings": {**recipe, "data_seed": 2},
    }
    other = {**_scored("other", 0.130, cell_generation=8), "settings": {**recipe, "dropout": 0.0}}
    text = rule.describe([base, best, reseeded, other])
    assert "Chosen: best," in text
    assert "(best: loss 0.1210, accuracy 80.0%, 2 invalid; again: loss 0.1250" in text
    assert "its answer loss spans 0.0040, against the rule's margin of 0.003." in text
    assert "other:" not in text
    assert "other seeds" not in rule.describe([base, best, other])


def test_rank_features_weigh_a_cells_first_genes_by_rank():
    from models.training.baselines import rank_features

    genes = ("A", "B", "C", "D")
    features = rank_features(["C A D B", "B"], genes, n_genes=3)
    # C first (3/3), A second (2/3), D third (1/3); B is fourth, past the top 3
    assert features.tolist() == [[2 / 3, 0.0, 1.0, 1 / 3], [0.0, 1.0, 0.0, 0.0]]


def test_the_card_names_the_cpu_a_run_trained_on_when_recorded():
    import json
    from pathlib import Path

    from models.training.card import render_card

    demo = Path(__file__).resolve().parents[2] / "models" / "c2s-demo-pythia"
    metrics = json.loads((demo / "metrics.json").read_text())
    training = json.loads((demo / "training.json").read_text())
    unrecorded = {k: v for k, v in training.items() if k != "machine"}
    assert "training on a 2-core CPU (" in render_card(metrics, unrecorded)
    cpu = {"cpu": "Xeon X", "logical_cpus": 2, "has_amx_bf16": True}
    card = render_card(metrics, {**training, "machine": cpu})
    assert "training on Xeon X (2 logical CPUs, with AMX) (" in card


def test_train_then_evaluate_passes_the_folder_and_the_pilots_cells(monkeypatch):
    from models.training import __main__ as entry
    from models.training import evaluate, train

    calls = []
    monkeypatch.setattr(train, "main", lambda argv: calls.append(("train", argv)))
    monkeypatch.setattr(evaluate, "main", lambda argv: calls.append(("evaluate", argv)))
    entry.main(["--out", "/tmp/p", "--steps", "10", "--validation-cells", "112"])
    assert calls == [
        ("train", ["--out", "/tmp/p", "--steps", "10", "--validation-cells", "112"]),
        ("evaluate", ["--model", "/tmp/p", "--validation-cells", "112"]),
    ]
    calls.clear()
    entry.main([])
    assert calls[1] == ("evaluate", ["--model", str(train.DEFAULT_OUT)])


def test_the_card_gives_each_recorded_rebuild_from_rebuilds_json():
    import json
    from pathlib import Path

    from models.training.card import _cpu
    from models.training.rebuilds import read_rebuilds

    demo = Path(__file__).resolve().parents[2] / "models" / "c2s-demo-pythia"
    card = (demo / "README.md").read_text()
    rebuilds = read_rebuilds(demo)
    assert rebuilds, "rebuilds.json records the recipe rebuilt on other CPUs"
    settings = json.loads((demo / "training.json").read_text())["settings"]
    for r in rebuilds:
        right = round(r["engine"]["cell_type_accuracy"] * r["held_out_cells"])
        precision = "bf16" if r["bf16"] else "fp32"
        assert (
            f"{r['steps']:,} steps on {_cpu(r['machine'])} in {precision}, "
            f"{r['seconds'] / 60:.1f} minutes at {r['seconds_per_step']:.2f} s a step, "
            f"{right} of {r['held_out_cells']} held out, "
            f"{sum(r['engine']['invalid'].values())} of 1,200 invalid outputs" in card
        )
    assert {r["bf16"] for r in rebuilds} == {True, False} and settings["bf16"] is True


def test_a_rebuild_is_the_recipe_at_most_at_another_precision(tmp_path):
    import json
    from dataclasses import asdict

    from models.training.rebuilds import summarise
    from models.training.train import TrainSettings

    metrics = {"cells": "held_out", "machine": {}, "held_out_cells": 140, "validity_examples": 1}
    metrics |= {"cell_type_accuracy": 0.8, "tasks": {"t": {"valid": 1.0}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    timing = {"seconds": 60.0, "seconds_per_step": 0.5}

    def record(**changed):
        settings = {**asdict(TrainSettings()), **changed}
        (tmp_path / "training.json").write_text(json.dumps({"settings": settings, **timing}))
        return summarise(tmp_path)

    assert record(bf16=False)["bf16"] is False
    assert record()["steps"] == TrainSettings().steps
    assert record()["bf16"] is True  # a run from before `autocast` was recorded
    timing["autocast"] = "fp32"  # the recipe on a CPU without AMX
    assert record()["bf16"] is False
    with pytest.raises(ValueError, match="not the recipe"):
        record(dropout=0.0)


def test_bf16_autocast_runs_only_on_cpus_with_amx():
    """Without AMX bf16 autocast is slower than fp32 (rebuilds.json), and `make demo-model`
    must stay under 30 minutes on 2 cores."""
    from models.training.train import TrainSettings, autocast

    amx, plain = {"has_amx_bf16": True}, {"has_amx_bf16": False}
    assert autocast(TrainSettings(), amx) == "bf16"
    assert autocast(TrainSettings(), plain) == "fp32"
    assert autocast(TrainSettings(bf16=False), amx) == "fp32"
