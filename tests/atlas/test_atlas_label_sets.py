"""Label sets: answer shapes, constraints, membership and the scorer over fake stages."""

from __future__ import annotations

import math
import re

import pytest

from serving.core.errors import InvalidRequest
from serving.core.label_sets import (
    LabelScorer,
    LabelSet,
    LabelShape,
    constrained_params,
    read_label_file,
    with_membership,
)
from serving.core.requests import PromptRequest
from serving.core.tasks import default_registry
from serving.engine import GenerationParams
from serving.testing.fake_engine import hashed_logprob
from tests.atlas.label_data import PBMC_LABELS, answer_with_label_set
from tests.task_inputs import CELL, CELLS

REGISTRY = default_registry()
SINGLE = LabelShape.of(REGISTRY.get("cell_type_prediction"))
PER_CELL = LabelShape.of(REGISTRY.get("multi_cell_type_prediction"))


def test_answer_shapes_follow_the_answer_templates():
    assert (SINGLE.head, SINGLE.tail, SINGLE.per_cell) == ("", ".", False)
    assert SINGLE.text(["B cell"]) == "B cell."
    assert LabelShape.of(REGISTRY.get("tissue_prediction")).text(["blood"]) == "blood."
    assert PER_CELL.per_cell
    assert PER_CELL.text(["A", "B"]) == "Cell 1:\nA.\nCell 2:\nB.\n."
    assert PER_CELL.header(["A"]) == "Cell 1:\nA.\nCell 2:\n"
    assert PER_CELL.candidate(["A"], "B", last=False) == "Cell 1:\nA.\nCell 2:\nB.\n"
    assert PER_CELL.candidate(["A"], "B", last=True) == PER_CELL.text(["A", "B"])


def test_tasks_without_labels_take_no_label_set():
    with pytest.raises(InvalidRequest, match="does not answer with labels"):
        LabelShape.of(REGISTRY.get("cell_generation"))


def test_per_cell_regex_matches_exactly_the_answers_in_the_set():
    pattern = re.compile(PER_CELL.regex(PBMC_LABELS, 2))
    assert pattern.fullmatch(PER_CELL.text(["CD4+/CD25 T Reg", "CD34+"]))
    assert not pattern.fullmatch(PER_CELL.text(["CD4+/CD25 T Reg", "CD34"]))
    assert not pattern.fullmatch(PER_CELL.text(["CD34+"]))
    assert not pattern.fullmatch(PER_CELL.text(["CD34+", "CD34+", "CD34+"]))


def test_constrained_params_choose_between_answers_with_room_for_the_longest():
    params = constrained_params(SINGLE, PBMC_LABELS, 1, GenerationParams.greedy(max_tokens=4))
    assert params.choices == tuple(f"{label}." for label in PBMC_LABELS)
    assert params.max_tokens == len("CD8+/CD45RA+ Naive Cytotoxic.") + 1
    per_cell = constrained_params(PER_CELL, PBMC_LABELS, 3, GenerationParams.greedy(max_tokens=4))
    assert per_cell.regex and not per_cell.choices
    unbounded = constrained_params(SINGLE, ["a"], 1, GenerationParams.greedy(max_tokens=None))
    assert unbounded.max_tokens is None


def test_label_set_validation():
    assert LabelSet(labels=(" B cell ", "T cell")).labels == ("B cell", "T cell")
    for bad in ((), ("a", "a"), ("",), ("two\nlines",)):
        with pytest.raises(ValueError):
            LabelSet(labels=bad)
    assert LabelSet.from_request(None) is None
    with pytest.raises(InvalidRequest, match="needs 'labels'"):
        LabelSet.from_request(None, "scored")
    with pytest.raises(InvalidRequest, match="distinct") as info:
        LabelSet.from_request(["a", "a"])
    assert info.value.param == "labels"


def test_read_label_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("B cell\n\n  T cell  \nMonocyte\n")
    assert read_label_file(path) == ("B cell", "T cell", "Monocyte")


def test_membership_is_exact_never_mapped():
    assert with_membership(SINGLE, {"label": "B cell"}, ["B cell"])["in_label_set"] is True
    assert with_membership(SINGLE, {"label": "b cell"}, ["B cell"])["in_label_set"] is False
    result = with_membership(PER_CELL, {"labels": ["B cell", "X"]}, ["B cell"])
    assert result["in_label_set"] == [True, False] and result["labels"] == ["B cell", "X"]


def brute_force(context, answer) -> float:
    return math.fsum(hashed_logprob((*context, *answer[:d]), t) for d, t in enumerate(answer))


async def test_scorer_scores_answer_text_and_eos_after_the_prompt(fake_stages):
    label_set = LabelSet(labels=PBMC_LABELS, mode="scored", top_k=3)
    scorer = await LabelScorer.for_stages(fake_stages, label_set)
    (prompt,) = await fake_stages.build(
        [PromptRequest(task="cell_type_prediction", inputs={"cell": CELL})]
    )
    answer = await scorer.score(SINGLE, prompt.token_ids)
    (ranked,) = answer.ranked
    encode = fake_stages.builder.builder.encoder.encode
    expected = {
        label: brute_force(prompt.token_ids, [*encode(f"{label}."), 0]) for label in PBMC_LABELS
    }
    best = max(PBMC_LABELS, key=expected.get)
    assert [r.label for r in ranked] == sorted(PBMC_LABELS, key=lambda lb: -expected[lb])[:3]
    for r in ranked:
        assert r.logprob == pytest.approx(expected[r.label], abs=1e-9)
    assert answer.text == f"{best}." and answer.token_ids == (*encode(f"{best}."), 0)


async def test_per_cell_scoring_follows_the_best_labels_before(fake_stages):
    label_set = LabelSet(labels=("B cell", "T cell", "NK cell"), mode="scored", top_k=2)
    scorer = await LabelScorer.for_stages(fake_stages, label_set)
    (prompt,) = await fake_stages.build(
        [
            PromptRequest(
                task="multi_cell_type_prediction", inputs={"cells": CELLS[:2], "n_genes": 5}
            )
        ]
    )
    answer = await scorer.score(PER_CELL, prompt.token_ids, n_cells=2)
    encode = fake_stages.builder.builder.encoder.encode
    first, second = (slot[0].label for slot in answer.ranked)
    # cell 2 is scored after cell 1's best label, with the shared header in the prompt
    header = encode(PER_CELL.header([first]))
    for r in answer.ranked[1]:
        ids = [*encode(PER_CELL.candidate([first], r.label, last=True)), 0]
        assert ids[: len(header)] == header
        assert r.logprob == pytest.approx(
            brute_force((*prompt.token_ids, *header), ids[len(header) :]), abs=1e-9
        )
    assert answer.text == PER_CELL.text([first, second])
    assert all(len(slot) == 2 for slot in answer.ranked)


async def test_label_set_answer_modes(fake_stages):
    jobs = [PromptRequest(task="cell_type_prediction", inputs={"cell": CELL})] * 3

    async def run(mode, labels=("B cell", "T cell")):
        return await answer_with_label_set(
            fake_stages,
            jobs,
            lambda prompt: prompt.params,
            label_set=LabelSet(labels=labels, mode=mode, top_k=2),
            registry=REGISTRY,
            chunk_size=2,
        )

    free = await run("free", ("T cell",))
    assert [i.answers[0].result for i in free] == [
        {"kind": "label", "label": "B cell", "in_label_set": False}
    ] * 3
    scored = await run("scored")
    for item in scored:
        result = item.answers[0].result
        assert result["in_label_set"] is True
        assert result["label"] == result["label_scores"][0]["label"]
        assert math.fsum(s["probability"] for s in result["label_scores"]) == pytest.approx(1.0)
        assert item.completion.text == f"{result['label']}."
    with pytest.raises(InvalidRequest, match="raw prompts"):
        await answer_with_label_set(
            fake_stages,
            [PromptRequest(raw_prompt="hello")],
            lambda p: p.params,
            label_set=LabelSet(labels=("a",)),
            registry=REGISTRY,
            chunk_size=2,
        )
