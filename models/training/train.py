"""Train the demo checkpoint from scratch on pbmc68k_reduced in all twelve task formats.

Run with ``make demo-model`` (``python -m models.training``), or alone with
``python -m models.training.train [--steps N] [--out DIR]`` for a smoke run.

Every example is rendered by the task registry and tokenised by `PromptBuilder`, exactly
as the server renders requests. The loss is the answer's plus a language-model loss on the
prompt at ``prompt_loss_weight`` (0.5 measured better than the answer alone for cell typing).
Every ``CURVE_EVERY`` steps the held-out cell typing is logged (`models.training.curve`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_summary
from models.training.curve import CURVE_EVERY, held_out_point
from models.training.dataset import DemoData, load_demo_data, validation_split
from models.training.examples import (
    MULTI_CELLS,
    PREDICTION_GENES,
    Example,
    ExampleDrawer,
    task_weights,
)
from models.training.expression_fit import write_expression_fit
from models.training.model import DemoShape, gpt_neox_config
from models.training.tokenizer import (
    EOS,
    PAD,
    gene_token_ids,
    save_tokenizer,
    train_tokenizer,
)
from serving.core.prompt_builder import GENES_FILE, PromptBuilder
from serving.core.tasks import TaskRegistry, default_registry
from tokenizer_ext.cell_text import multi_cell_text

DEFAULT_OUT = Path("models/c2s-demo-pythia")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that fixes a training run (written to ``training.json``).

    The defaults are the recipe of the committed checkpoint (a test holds them to its
    ``training.json``), chosen on the pilots recorded in its ``pilots.json``.
    """

    steps: int = 2400
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 60
    weight_decay: float = 0.01
    prompt_loss_weight: float = 0.5
    #: score only the prompt's targets that are gene tokens, so the model never learns the
    #: template words that follow a prompt's gene list and leaks them into generated cells
    prompt_loss_genes_only: bool = False
    #: with ``prompt_loss_genes_only``, also score the tokens that frame cells in a prompt
    #: (``Cell N:``, full stops, line breaks), which teach where a cell ends
    prompt_loss_cell_frames: bool = False
    vocab_size: int = 4096
    torch_threads: int = 2
    data_seed: int = 1
    torch_seed: int = 0
    #: examples are length-sorted within pools of this many batches to cut padding
    pool_batches: int = 32
    #: attention and hidden dropout in training (against overfitting 560 cells)
    dropout: float = 0.1
    #: decay of the moving average of the weights that is saved; 0 saves the last weights
    ema_decay: float = 0.995
    #: share of genes dropped from cell type prediction prompts (`ExampleDrawer`)
    gene_dropout: float = 0.15
    #: noise on expressed log values before cell type prediction prompts are ranked again
    expression_noise: float = 0.1
    #: share of cell type prediction prompts on a pseudo-cell of two same-type cells
    cell_mixing: float = 0.3
    #: > 0 for a pilot run: train on the other training cells and measure the curve on this
    #: many of them (`validation_split`); the 140 held-out cells are not used at all
    validation_cells: int = 0
    #: share of cell type prediction among the examples (the other tasks keep their ratios)
    cell_type_share: float = 0.4
    #: forward passes under bf16 autocast on CPUs with AMX (~1.8x faster steps there); the
    #: weights and the optimiser stay fp32. Without AMX bf16 autocast is slower than fp32
    #: (rebuilds.json: 0.94 against 0.66 s a step), so those CPUs run fp32 (`autocast`)
    bf16: bool = True
    #: transformer layers (hidden size and heads stay Pythia's head size 64 at width 256)
    layers: int = DemoShape().num_hidden_layers


def autocast(s: TrainSettings, machine: dict) -> str:
    """The precision of the forward passes: ``bf16`` where asked and the CPU has AMX."""
    return "bf16" if s.bf16 and machine["has_amx_bf16"] else "fp32"


@dataclass(frozen=True)
class Encoded:
    """One example as token ids: prompt then answer (ending in EOS)."""

    prompt: list[int]
    answer: list[int]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.answer)


def render_texts(examples: list[Example], registry: TaskRegistry) -> list[str]:
    """Prompt and answer texts of examples, for training the tokenizer."""
    texts = []
    for ex in examples:
        spec = registry.get(ex.task)
        texts.append(spec.render_prompt(spec.input_model.model_validate(ex.payload), ex.template))
        texts.append(spec.render_answer(ex.answer))
    return texts


def encode_examples(examples: list[Example], builder: PromptBuilder) -> list[Encoded]:
    """Prompt ids from the builder (as served); answer ids are the answer text's plus EOS."""
    eos = builder.encoder.tokenizer.token_to_id(EOS)
    encoded = []
    for ex in examples:
        prompt = builder.build(ex.task, ex.payload, ex.template).token_ids
        answer_text = builder.registry.get(ex.task).render_answer(ex.answer)
        encoded.append(Encoded(list(prompt), [*builder.encoder.encode(answer_text), eos]))
    return encoded


def batches(encoded: list[Encoded], settings: TrainSettings, rng: np.random.Generator):
    """Batches of similar length, in random order."""
    size, pool = settings.batch_size, settings.batch_size * settings.pool_batches
    out = []
    for start in range(0, len(encoded) - size + 1, pool):
        chunk = sorted(encoded[start : start + pool], key=len)
        out += [chunk[i : i + size] for i in range(0, len(chunk) - size + 1, size)]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def collate(batch: list[Encoded], pad_id: int, prompt_weight: float, prompt_targets=None):
    """Input ids, attention mask and per-target loss weights of a right-padded batch.

    ``prompt_targets`` (a tensor of token ids), when given, limits the prompt's loss to
    targets among them.
    """
    import torch

    length = max(len(e) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    weights = torch.zeros((len(batch), length - 1))
    prompt = torch.zeros((len(batch), length - 1), dtype=torch.bool)
    for row, e in enumerate(batch):
        seq = e.prompt + e.answer
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        # weights[t] scores the prediction of token t + 1
        prompt[row, : len(e.prompt) - 1] = True
        weights[row, len(e.prompt) - 1 : len(seq) - 1] = 1.0
    if prompt_targets is not None:
        prompt &= torch.isin(ids[:, 1:], prompt_targets)
    weights[prompt] = prompt_weight
    return ids, mask, weights


def cell_frame_token_ids(tokenizer, genes) -> list[int]:
    """The tokens around genes in C2S's multi-cell text of the most cells a prompt holds."""
    items = [f"{genes[0]} {genes[-1]}"] * MULTI_CELLS[1]
    ids = tokenizer.encode(multi_cell_text(items), add_special_tokens=False).ids
    return sorted(set(ids) - set(gene_token_ids(tokenizer, genes)))


def prompt_target_ids(tokenizer, genes, s: TrainSettings) -> list[int] | None:
    """The prompt targets the loss scores, or None for all of them."""
    if not s.prompt_loss_genes_only:
        return None
    frames = cell_frame_token_ids(tokenizer, genes) if s.prompt_loss_cell_frames else []
    return sorted({*gene_token_ids(tokenizer, genes), *frames})


def shape(s: TrainSettings) -> DemoShape:
    return replace(DemoShape(), num_hidden_layers=s.layers)


def learning_rate(step: int, s: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay_at(decay: float, step: int) -> float:
    """The moving average's decay at ``step``: warmed up, so ``decay`` itself is reached
    only at ``step >= (10 * decay - 1) / (1 - decay)`` (1,791 for 0.995)."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """Exponential moving average of a model's weights, warmed up over the first steps."""

    def __init__(self, model, decay: float) -> None:
        import copy

        self.model = copy.deepcopy(model)
        self.decay = decay

    def update(self, model, step: int) -> None:
        import torch

        decay = ema_decay_at(self.decay, step)
        with torch.no_grad():
            for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
                average.lerp_(current, 1 - decay)


def train_model(
    encoded: list[Encoded],
    held_out: list[Encoded],
    vocab_size: int,
    pad_id: int,
    s: TrainSettings,
    prompt_targets: list[int] | None = None,
    bf16: bool = False,
):
    """Train a fresh demo GPT-NeoX; returns the model to save, the loss and the held-out curve.

    With ``ema_decay`` the model to save (and to measure) is the moving average of the weights;
    with ``bf16`` the forward passes run under bf16 autocast.
    """
    import torch
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(s.torch_seed)
    torch.set_num_threads(s.torch_threads)
    model = GPTNeoXForCausalLM(gpt_neox_config(vocab_size, shape(s), dropout=s.dropout))
    model.train()
    average = WeightAverage(model, s.ema_decay) if s.ema_decay else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    plan = batches(encoded, s, np.random.default_rng(s.data_seed))[: s.steps]
    targets = None if prompt_targets is None else torch.tensor(prompt_targets)
    losses, curve, started = [], [], time.monotonic()
    for step, batch in enumerate(plan):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, s)
        ids, mask, weights = collate(batch, pad_id, s.prompt_loss_weight, targets)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logits = logits.float()
        token_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
        )
        loss = (token_loss * weights.reshape(-1)).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if average:
            average.update(model, step)
        losses.append(loss.item())
        last = step == len(plan) - 1
        if (step + 1) % CURVE_EVERY == 0 or last:
            point = {"step": step + 1, "seconds": round(time.monotonic() - started)}
            point |= held_out_point(average.model if average else model, held_out, pad_id, collate)
            point["curve_seconds"] = round(time.monotonic() - started - point["seconds"], 1)
            curve.append(point)
            print(f"held out at step {step + 1}: {point}", flush=True)
        if step % 50 == 0 or last:
            elapsed = time.monotonic() - started
            print(
                f"step {step:5d}/{len(plan)}  loss {np.mean(losses[-50:]):.3f}  {elapsed:6.0f}s",
                flush=True,
            )
    return (average.model if average else model), losses, curve


def save_checkpoint(model, out_dir: Path) -> None:
    """Save weights in bf16 (the demo's size limit; the engine serves bf16)."""
    import torch

    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)


def run(out_dir: Path, settings: TrainSettings) -> dict:
    """The whole pipeline: data, tokenizer, examples, training, checkpoint."""
    started, cpu_started = time.monotonic(), time.process_time()
    registry = default_registry()
    data: DemoData = load_demo_data()
    if settings.validation_cells:
        data = validation_split(data, settings.validation_cells)
    n_examples = settings.steps * settings.batch_size
    drawer = ExampleDrawer(
        data,
        data.train,
        registry,
        settings.data_seed,
        gene_dropout=settings.gene_dropout,
        expression_noise=settings.expression_noise,
        cell_mixing=settings.cell_mixing,
    )
    examples = drawer.draw_mixture(
        n_examples + settings.batch_size * settings.pool_batches,
        task_weights(settings.cell_type_share),
    )
    tokenizer = train_tokenizer(render_texts(examples, registry), data.genes, settings.vocab_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out_dir, model_max_length=DemoShape().max_position_embeddings)
    (out_dir / GENES_FILE).write_text("\n".join(data.genes) + "\n")
    write_expression_fit(out_dir, data.train)
    builder = PromptBuilder(tokenizer, DemoShape().max_position_embeddings, genes=data.genes)
    encoded = encode_examples(examples, builder)
    print(f"{len(encoded)} examples, mean {np.mean([len(e) for e in encoded]):.0f} tokens")
    held_out = ExampleDrawer(data, data.held_out, registry, settings.data_seed)
    held_out_encoded = encode_examples(held_out.cell_type_examples(PREDICTION_GENES[1]), builder)
    train_started = time.monotonic()
    targets = prompt_target_ids(tokenizer, data.genes, settings)
    machine = cpu_summary()
    precision = autocast(settings, machine)
    model, losses, curve = train_model(
        encoded,
        held_out_encoded,
        tokenizer.get_vocab_size(),
        tokenizer.token_to_id(PAD),
        settings,
        prompt_targets=targets,
        bf16=precision == "bf16",
    )
    train_seconds = time.monotonic() - train_started
    save_checkpoint(model, out_dir)
    report = {
        "settings": asdict(settings),
        "shape": asdict(shape(settings)),
        "task_weights": task_weights(settings.cell_type_share),
        "parameters": sum(p.numel() for p in model.parameters()),
        "examples": len(encoded),
        "train_cells": len(data.train),
        "held_out_cells": len(data.held_out),
        # the demo (`c2s demo`) scores these rows of pbmc68k_reduced as the held-out part
        "held_out_rows": data.held_out.tolist(),
        "curve_cells": "validation" if settings.validation_cells else "held_out",
        "final_loss": float(np.mean(losses[-50:])),
        "held_out_curve": curve,
        "train_seconds": round(train_seconds, 1),
        # training steps alone, without the held-out curve's forward passes
        "seconds_per_step": round(
            (train_seconds - sum(p["curve_seconds"] for p in curve)) / len(losses), 3
        ),
        "seconds": round(time.monotonic() - started, 1),
        # CPU seconds over wall seconds: about the thread count on an idle machine, lower
        # when other jobs share the cores
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        # the weights depend on the CPU: its kernels differ with and without AMX
        "machine": machine,
        "autocast": precision,
    }
    (out_dir / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def parse_args(argv: list[str] | None = None) -> tuple[Path, TrainSettings]:
    """The output folder and the settings: the defaults, or any of them overridden."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # every setting can be overridden, for pilot runs (`make demo-model` uses the defaults)
    for f in fields(TrainSettings):
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    return args.out, TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})


def main(argv: list[str] | None = None) -> None:
    out, settings = parse_args(argv)
    report = run(out, settings)
    keys = ("final_loss", "seconds", "seconds_per_step", "parameters")
    print(json.dumps({k: report[k] for k in keys}))


if __name__ == "__main__":
    main()
