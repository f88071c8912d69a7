"""The demo's data and examples: the fixed split, labels, and registry-rendered examples."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from models.training.dataset import (
    TISSUE,
    describe_cells,
    gene_set_name,
    load_demo_data,
    validation_split,
)
from models.training.examples import TASK_WEIGHTS, ExampleDrawer
from serving.core.tasks import default_registry


@pytest.fixture(scope="module")
def data():
    return load_demo_data()


def test_split_is_80_20_stratified_with_seed_0(data):
    assert (len(data.train), len(data.held_out)) == (560, 140)
    assert not set(data.train) & set(data.held_out)
    labels = np.asarray(data.labels)
    held_out = Counter(labels[data.held_out])
    assert held_out["Dendritic"] == 48 and held_out["CD14+ Monocyte"] == 26
    majority = np.mean(labels[data.held_out] == "Dendritic")
    assert round(100 * majority, 1) == 34.3


def test_sentences_rank_the_raw_values(data):
    first = data.sentences[0].split(" ")
    row = data.expression[0]
    column = {g: i for i, g in enumerate(data.genes)}
    values = [row[column[g]] for g in first]
    assert values == sorted(values, reverse=True) and min(values) > 0
    assert len(first) == int((row > 0).sum())


def test_gene_sets_and_abstracts(data):
    assert len(data.gene_sets) == 10
    assert data.gene_sets[gene_set_name("CD56+ NK")][:3] == ("GNLY", "NKG7", "CD7")
    assert describe_cells(["B", "A", "B"]).endswith("The 3 cells shown are 2 B and 1 A cells")
    assert TISSUE == "peripheral blood"


def test_every_task_draws_valid_inputs_and_answers(data):
    registry = default_registry()
    drawer = ExampleDrawer(data, data.train, registry, seed=0)
    assert set(TASK_WEIGHTS) == set(registry.names) and abs(sum(TASK_WEIGHTS.values()) - 1) < 1e-9
    for task in registry.names:
        spec = registry.get(task)
        for _ in range(5):
            example = drawer.draw(task)
            prompt = spec.render_prompt(
                spec.input_model.model_validate(example.payload), example.template
            )
            answer = spec.render_answer(example.answer)
            assert prompt and answer.endswith(".")
            # the task's own parser reads the training answer back
            assert spec.parser(answer, frozenset(data.genes)) is not None


def test_examples_are_reproducible(data):
    registry = default_registry()
    first = ExampleDrawer(data, data.train, registry, seed=3).draw_mixture(50)
    second = ExampleDrawer(data, data.train, registry, seed=3).draw_mixture(50)
    assert first == second
    held_out = set(data.held_out.tolist())
    typing = ExampleDrawer(data, data.held_out, registry, seed=0).cell_type_examples(200)
    assert len(typing) == 140 and all(
        data.sentences.index(e.payload["cell"]) in held_out for e in typing
    )


def test_gene_dropout_keeps_the_ranking_and_spares_evaluation(data):
    registry = default_registry()
    drawer = ExampleDrawer(data, data.train, registry, seed=0, gene_dropout=0.15)
    for _ in range(20):
        kept = drawer.draw("cell_type_prediction").payload["cell"].split(" ")
        ranked = next(
            s.split(" ")
            for s in (data.sentences[c] for c in data.train)
            if kept[0] in s and set(kept) <= set(s.split(" "))
        )
        assert kept == [g for g in ranked if g in set(kept)]  # order kept
        assert 0.7 * len(ranked) < len(kept) < len(ranked)
    # evaluation prompts carry the whole sentence whatever the drawer's setting
    typing = drawer.cell_type_examples(200)
    assert [e.payload["cell"] for e in typing] == [data.sentences[c] for c in data.train]


def test_expression_noise_reorders_a_cell_without_changing_its_genes(data):
    registry = default_registry()
    cell = int(data.train[0])
    # a tiny noise only breaks ties: C2S drew their order once, any other order is as true
    ties_only = ExampleDrawer(data, [cell], registry, seed=0, expression_noise=1e-9)
    noisy = ExampleDrawer(data, [cell], registry, seed=0, expression_noise=0.1)
    original = data.sentences[cell].split(" ")
    values = dict(zip(data.genes, data.expression[cell], strict=True))
    for drawer in (ties_only, noisy):
        cells = [drawer.draw("cell_type_prediction").payload["cell"].split(" ") for _ in range(5)]
        assert all(sorted(c) == sorted(original) for c in cells)  # every expressed gene, once
        assert any(c != original for c in cells)
    tied = ties_only.draw("cell_type_prediction").payload["cell"].split(" ")
    assert [values[g] for g in tied] == [values[g] for g in original]  # only ties moved
    # evaluation prompts keep the committed sentences
    assert noisy.cell_type_examples(200)[0].payload["cell"] == data.sentences[cell]


def test_cell_mixing_ranks_a_pseudo_cell_of_two_same_type_cells(data):
    registry = default_registry()
    labels = np.asarray(data.labels)
    pair = [int(c) for c in data.train if labels[c] == "CD34+"][:2]
    drawer = ExampleDrawer(data, pair, registry, seed=0, cell_mixing=1.0)
    example = drawer.draw("cell_type_prediction")
    genes = example.payload["cell"].split(" ")
    union = set(data.sentences[pair[0]].split(" ")) | set(data.sentences[pair[1]].split(" "))
    assert sorted(genes) == sorted(union) and example.answer == {"cell_type": "CD34+"}
    # ranked by the mean of the two cells' counts
    column = {g: i for i, g in enumerate(data.genes)}
    mean = np.expm1(data.expression[pair]).mean(axis=0)
    assert all(mean[column[a]] >= mean[column[b]] for a, b in itertools.pairwise(genes))


def test_validation_split_never_touches_the_held_out_cells(data):
    pilot = validation_split(data, 112)
    assert (len(pilot.train), len(pilot.held_out)) == (448, 112)
    assert set(pilot.train) | set(pilot.held_out) == set(data.train)
    assert not set(pilot.held_out) & set(data.held_out)
    labels = np.asarray(data.labels)
    assert Counter(labels[pilot.held_out])["Dendritic"] == round(112 * 192 / 560)
