"""The demo checkpoint's model card, written from its training and evaluation records."""

from __future__ import annotations

from pathlib import Path

from models.training.dataset import ABSTRACT_LEAD, GENE_SET_SIZE, TISSUE
from models.training.examples import (
    GENERATION_GENES,
    MULTI_CELL_GENES,
    MULTI_CELLS,
    PREDICTION_GENES,
)
from models.training.pilots import RECIPE_RULE, pilot_table, read_pilots
from models.training.rebuilds import read_rebuilds
from models.training.train import ema_decay_at

SCORE_NAMES = {
    "cell_type_prediction": "accuracy",
    "tissue_prediction": "accuracy",
    "multi_cell_type_prediction": "per-cell accuracy",
    "genes_to_gene_set": "accuracy",
    "gene_set_to_genes": "Jaccard overlap with the true set",
    "cells_to_abstract": "exact match with the reference abstract",
}
#: generated cells are scored by how many of their genes are distinct (not repeats)
DISTINCT = "distinct genes"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _interval(metrics: dict) -> str:
    """Right cells, and the 95% Wilson interval: 140 cells cannot tell a point or two apart."""
    from scipy.stats import binomtest

    n = metrics["held_out_cells"]
    right = round(metrics["cell_type_accuracy"] * n)
    ci = binomtest(right, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{right} of {n}, 95% interval {100 * ci.low:.1f}-{100 * ci.high:.1f}%"


def _step_time(training: dict) -> str:
    """Seconds per training step and the load beside it, when the run recorded them."""
    if "seconds_per_step" not in training:
        return ""
    return (
        f"A training step took {training['seconds_per_step']:.2f} s on average (load average "
        f"{training['load_average_1min_at_end']} at the end; the held-out curve excluded)."
    )


def curve_table(training: dict) -> str:
    """The held-out curve: teacher-forced cell typing every few hundred steps."""
    curve = training.get("held_out_curve")
    if not curve:
        return ""
    rows = [
        "Held-out cell typing during training (teacher-forced, `models.training.curve`):",
        "",
        "| step | answer loss | greedy-exact answers |",
        "| --- | --- | --- |",
    ]
    rows += [f"| {p['step']} | {p['answer_loss']:.3f} | {_pct(p['greedy_exact'])} |" for p in curve]
    return "\n".join(rows)


def _regularisation(training: dict) -> str:
    """What the run did against learning the training cells by heart."""
    s = training["settings"]
    if not (s.get("dropout") or s.get("ema_decay") or s.get("gene_dropout")):
        return ""
    augmentation = _augmentation(s)
    return f"""Against overfitting the {training["train_cells"]} training cells: dropout {s["dropout"]} (attention and
hidden), {s["gene_dropout"]:.0%} of a cell's genes dropped at random (order kept) before a cell type
prediction prompt takes its top genes,{augmentation} and the saved weights are the moving average (decay
{s["ema_decay"]}, warmed up as min(decay, (1 + step) / (10 + step)): {_last_decay(s)} at the last step) of the trained ones. These settings were fixed before the run; the held-out
curve below is only logged, and no step or setting was chosen on the held-out cells
(`--validation-cells` runs a pilot on a split of the training cells instead)."""


def _last_decay(s: dict) -> str:
    """The moving average's decay at the last step (the warm-up may keep it below the
    setting: then a larger setting changes nothing)."""
    return f"{ema_decay_at(s['ema_decay'], s['steps'] - 1):.4f}"


def _augmentation(s: dict) -> str:
    """The re-ranking augmentations of cell type prediction prompts, when the run used them."""
    parts = []
    if s.get("expression_noise"):
        parts.append(
            f" each such cell ranked again from its log expression plus Gaussian noise (sd "
            f"{s['expression_noise']}; most genes tie at one or two counts, and C2S orders ties "
            "by one fixed draw)"
        )
    if s.get("cell_mixing"):
        parts.append(
            f" {s['cell_mixing']:.0%} of them a pseudo-cell (the mean counts of two training "
            "cells of the same type)"
        )
    return ",".join(parts) + ("," if parts else "")


def _sharing(training: dict) -> str:
    """How busy the machine was, when the run recorded it (CPU seconds per wall second)."""
    if "cpu_seconds" not in training:
        return ""
    ratio = training["cpu_seconds"] / training["seconds"]
    return f" ({ratio:.2f} CPU-seconds per second of wall time; 2.0 means no other load)"


def _cpu(machine: dict) -> str:
    amx = "with" if machine["has_amx_bf16"] else "without"
    return f"{machine['cpu']} ({machine['logical_cpus']} logical CPUs, {amx} AMX)"


def _machine(metrics: dict) -> str:
    """The CPU the evaluation ran on: seeded sampling differs between CPUs' bf16 kernels."""
    if "machine" not in metrics:
        return ""
    return (
        f" Evaluated on {_cpu(metrics['machine'])}. The outputs depend on the CPU's bf16 "
        "kernels: on another CPU the same seeds give some other outputs."
    )


def _training_cpu(training: dict) -> str:
    """The CPU of the training run, when it recorded it (older runs did not)."""
    return _cpu(training["machine"]) if "machine" in training else "a 2-core CPU"


def _rebuilds(rebuilds: list[dict]) -> str:
    """The recipe rebuilt with its seeds on other CPUs (`models.training.rebuilds`), each
    with the number of steps the recipe had then."""
    runs = [
        f"{r['steps']:,} steps on {_cpu(r['machine'])} in {'bf16' if r['bf16'] else 'fp32'}, "
        f"{r['seconds'] / 60:.1f} minutes at {r['seconds_per_step']:.2f} s a step, "
        f"{round(r['engine']['cell_type_accuracy'] * r['held_out_cells'])} of "
        f"{r['held_out_cells']} held out, {sum(r['engine']['invalid'].values())} of "
        f"{r['engine']['examples']:,} invalid outputs"
        for r in rebuilds
    ]
    if not runs:
        return ""
    return (
        " Rebuilt with the same seeds, at the steps the recipe had then (`rebuilds.json`): "
        f"{'; '.join(runs)}."
    )


def _folds(b: dict) -> str:
    """The logistic regressions over folds of the training cells, beside the held-out split."""
    return (
        f"By {b['folds']}-fold cross-validation over the training cells alone (the held-out "
        f"cells unused), the two logistic regressions score {_pct(b['logistic_regression_folds'])} "
        f"and {_pct(b['logistic_regression_on_ranks_folds'])}, against "
        f"{_pct(b['logistic_regression'])} and {_pct(b['logistic_regression_on_ranks'])} on "
        "the held-out cells: one split of 140 cells is easier or harder than the data."
    )


def task_table(metrics: dict, training: dict) -> str:
    """One row per task: share of training, validity rate, and its score where it has one."""
    rows = ["| task | share of training | valid outputs | score |", "| --- | --- | --- | --- |"]
    for task, m in metrics["tasks"].items():
        share = training["task_weights"][task]
        name = SCORE_NAMES.get(task, DISTINCT)
        score = f"{_pct(m['score'])} ({name})" if m["score"] is not None else "-"
        rows.append(f"| `{task}` | {share:.0%} | {_pct(m['valid'])} | {score} |")
    return "\n".join(rows)


def render_card(
    metrics: dict, training: dict, pilots: list[dict] = (), rebuilds: list[dict] = ()
) -> str:
    """The model card's Markdown."""
    b = metrics["baselines"]
    s = training["settings"]
    shape = training["shape"]
    minutes = training["seconds"] / 60
    return f"""# c2s-demo-pythia

A tiny Cell2Sentence-style model for demos and tests: a GPT-NeoX with Pythia's structure
(rotary_pct 0.25, parallel residual, 8192 positions with plain RoPE, bos = eos = 0),
{shape["num_hidden_layers"]} layers, hidden {shape["hidden_size"]}, {shape["num_attention_heads"]} heads,
{training["parameters"] / 1e6:.1f}M parameters stored in bf16, and a ByteLevel BPE tokenizer
trained by this project in which every gene symbol is one token. It was trained from scratch,
in all twelve task formats of `serving.core.tasks`, on scanpy's `pbmc68k_reduced` (700 real
PBMCs x 765 genes shipped inside the scanpy wheel). It is a demo: it knows 765 genes and
10 cell types of one dataset, nothing more.

## Held-out results

Split: 80/20 by cell, stratified by `obs["bulk_labels"]`, seed 0:
{training["train_cells"]} training cells, {metrics["held_out_cells"]} held-out cells.
Prompts built by `PromptBuilder`, answers parsed by `Decoder`, served by the real engine:
{metrics["engine"]}.{_machine(metrics)}

| cell type annotator (held-out) | accuracy |
| --- | --- |
| **this model**, greedy, template 0, top {metrics["eval_genes"]} genes | **{_pct(metrics["cell_type_accuracy"])}** ({_interval(metrics)}; {_pct(metrics["cell_type_valid"])} valid labels) |
| majority class | {_pct(b["majority_class"])} |
| logistic regression on the 765-gene log expression | {_pct(b["logistic_regression"])} |
| logistic regression on the model's input: the top {b["rank_genes"]} genes, each weighted by its rank | {_pct(b["logistic_regression_on_ranks"])} |

{_folds(b)}

Every task on {metrics["validity_examples"]} held-out examples each (template 0, the task's
default sampling, seeded). Valid means: a label the model was trained on; gene lists with
only vocabulary genes (repeats are merged by C2S's post-processing; the score column gives
the share of distinct genes); one block per requested cell; alphabetical lists sorted;
non-empty text.

{task_table(metrics, training)}

## Training data

- Cell sentences: C2S's ranking (`tokenizer_ext.cell_sentences`, ties broken as C2S with
  seed 42) of the log-normalised `.raw` values.
- Labels: cell types from `bulk_labels`; tissue = "{TISSUE}" (the dataset is PBMCs); gene
  sets = the top {GENE_SET_SIZE} marker genes of each cell type in `uns["rank_genes_groups"]`,
  named `PBMC68K <cell type> markers`; abstracts = "{ABSTRACT_LEAD} The N cells shown are
  <composition> cells" (written for this demo).
- Prompts: the registry's templates (a random variant per example), rendered and tokenised
  by `PromptBuilder`, so training and serving see identical token ids.
- Trained ranges: cell type prediction {PREDICTION_GENES[0]}-{PREDICTION_GENES[1]} genes;
  single-cell generation {GENERATION_GENES[0]}-{GENERATION_GENES[1]} genes; multi-cell
  {MULTI_CELLS[0]}-{MULTI_CELLS[1]} cells x {MULTI_CELL_GENES[0]}-{MULTI_CELL_GENES[1]} genes.
  Requests outside these ranges are served but the model has not seen them.

## Training

{training["examples"]} examples ({s["steps"]} steps of batch {s["batch_size"]}), AdamW at lr
{s["lr"]} (warm-up {s["warmup_steps"]} steps, cosine to {s["min_lr_ratio"]}x), loss on the
answer plus {s["prompt_loss_weight"]} x the language-model loss on the prompt{_prompt_targets(s)}, seeds
{s["data_seed"]} (data) and {s["torch_seed"]} (torch), {s["torch_threads"]} threads.
Final training loss {training["final_loss"]:.3f}. Time: {minutes:.1f} minutes for data,
tokenizer and training on {_training_cpu(training)}{_sharing(training)}, plus
{metrics.get("seconds", 0) / 60:.1f} minutes of evaluation (engine start included).
{_step_time(training)}

{_regularisation(training)}

{pilot_table(list(pilots))}

{_recipe_choice(list(pilots))}

{curve_table(training)}

Reproduce (from the repository root, in the project's virtual environment):

    make demo-model

which runs `python -m models.training` (train, then evaluate and rewrite this card).
Training repeats to the digit on the same CPU, not on another: kernels differ with and
without AMX, so a rebuild elsewhere is another draw of the recipe. The forward passes run
under bf16 autocast on CPUs with AMX and in fp32 on the others, where bf16 is slower.{_rebuilds(rebuilds)}

Files: `config.json`, `model.safetensors` (bf16), `tokenizer.json`, `tokenizer_config.json`,
`special_tokens_map.json`, `gene_vocabulary.txt` (the 765 genes; `PromptBuilder` measures
tokens per gene and `Decoder` checks genes against it), `training.json`, `metrics.json`,
`pilots.json` (the pilot runs the recipe was chosen on), `rebuilds.json` (the recipe rebuilt
on other CPUs).
"""


def _recipe_choice(pilots: list[dict]) -> str:
    """How the recipe was chosen, when the pilots were served by the engine."""
    if not any("engine" in p for p in pilots):
        return ""
    return RECIPE_RULE.describe(pilots)


def _prompt_targets(settings: dict) -> str:
    """What the prompt's loss scores, when the run limited it."""
    if not settings.get("prompt_loss_genes_only"):
        return ""
    return (
        "'s gene tokens only (its template words are not scored, so a generated gene list"
        " is never taught to run on into them)"
    )


def write_model_card(model_dir: Path, metrics: dict, training: dict) -> None:
    """Write ``README.md`` into the model directory (with its pilots, when recorded)."""
    card = render_card(metrics, training, read_pilots(model_dir), read_rebuilds(model_dir))
    (model_dir / "README.md").write_text(card)
