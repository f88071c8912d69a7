"""The benchmark workloads: the same cells, prompts and sampling for every path.

Cells are scanpy's ``pbmc68k_reduced`` (700 PBMCs, log-normalised ``.raw``), ranked into
cell sentences as C2S does. Two single-cell workloads:

- ``prediction``: cell type prediction (C2S template 0, 200 genes), greedy, exactly
  ``PREDICTION_TOKENS`` output tokens (``min_tokens`` = ``max_tokens``, EOS ignored), about a
  Cell Ontology label and its EOS;
- ``generation``: cell-type-conditioned generation of a 200-gene cell (template 0),
  sampling as C2S's tutorials (top_k 50, top_p 0.95), exactly ``GENERATION_TOKENS`` output
  tokens.

Fixed output lengths make every path do the same work, whatever a checkpoint's weights
would stop at. Every repeat uses different cells, so prefix caching never answers a
repeated prompt (the shared template prefix is cached in every path that has a cache, as
in real use).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: genes per cell in single-cell prompts (C2S's default)
GENES_PER_CELL = 200
PREDICTION_TOKENS = 16
GENERATION_TOKENS = 200
ORGANISM = "Homo sapiens"


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload: its task and the exact sampling every path uses."""

    name: str
    task: str
    output_tokens: int
    temperature: float
    top_p: float = 1.0
    top_k: int | None = None

    def params(self) -> dict:
        """`serving.engine.GenerationParams` fields with a fixed output length."""
        return {
            "max_tokens": self.output_tokens,
            "min_tokens": self.output_tokens,
            "ignore_eos": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }


WORKLOADS = {
    "prediction": WorkloadSpec("prediction", "cell_type_prediction", PREDICTION_TOKENS, 0.0),
    "generation": WorkloadSpec(
        "generation", "cell_type_generation", GENERATION_TOKENS, 1.0, top_p=0.95, top_k=50
    ),
}


@dataclass(frozen=True)
class Cell:
    """One PBMC: its row, its C2S cell sentence and its label."""

    row: int
    sentence: str
    label: str


def pbmc_cells(min_genes: int = GENES_PER_CELL, seed: int = 0) -> list[Cell]:
    """pbmc68k_reduced's cells with at least ``min_genes`` expressed genes, shuffled."""
    import scanpy as sc
    import scipy.sparse as sp

    from tokenizer_ext.sentences import sentence_from_vector

    adata = sc.datasets.pbmc68k_reduced()
    raw = sp.csr_matrix(adata.raw.X)
    genes = [g.upper() for g in adata.raw.var_names]
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    cells = []
    for row in np.random.default_rng(seed).permutation(raw.shape[0]):
        values = raw[row].toarray().ravel()
        if int((values > 0).sum()) < min_genes:
            continue
        sentence = sentence_from_vector(list(values), genes, tie_break="c2s", seed=42)
        cells.append(Cell(int(row), sentence, str(labels[row])))
    return cells


def panel_genes() -> list[str]:
    import scanpy as sc

    return [g.upper() for g in sc.datasets.pbmc68k_reduced().raw.var_names]


def padded_sentence(sentence: str, n_genes: int, genes: list[str], seed: int) -> str:
    """``sentence`` extended to ``n_genes`` with unexpressed panel genes in a seeded order.

    pbmc68k_reduced is a 765-gene panel (median 243 expressed per cell), so 400-gene cells
    for long multi-cell prompts need this; the compute depends only on the token count.
    """
    words = sentence.split(" ")
    present = set(words)
    rest = [g for g in genes if g not in present]
    order = np.random.default_rng(seed).permutation(len(rest))
    words += [rest[i] for i in order[: max(0, n_genes - len(words))]]
    return " ".join(words[:n_genes])


def task_inputs(workload: WorkloadSpec, cell: Cell) -> dict:
    """The task's structured inputs, as the gateway and the prompt builder take them."""
    if workload.task == "cell_type_prediction":
        return {"cell": cell.sentence, "n_genes": GENES_PER_CELL, "organism": ORGANISM}
    return {"cell_type": cell.label, "n_genes": GENES_PER_CELL, "organism": ORGANISM}


@dataclass(frozen=True)
class CellPlan:
    """How many cells each path sees: per timed run, timed runs, warm-up cells, and the
    cells of C2S's one-at-a-time path (slow: a prefix of the first run)."""

    cells_per_run: int
    runs: int
    warmup_cells: int
    one_at_a_time_cells: int

    @property
    def total(self) -> int:
        return self.warmup_cells + self.cells_per_run * self.runs


def write_cells_h5ad(rows: list[int], path: Path) -> Path:
    """pbmc68k_reduced's ``rows``, in that order, as an ``.h5ad`` (the bulk job's input)."""
    import scanpy as sc

    path.parent.mkdir(parents=True, exist_ok=True)
    sc.datasets.pbmc68k_reduced()[rows].copy().write_h5ad(path)
    return path


def file_sentences(path: Path) -> list[str]:
    """Cell sentences of a file's cells, ranked as the bulk job ranks them (C2S's seeded
    tie-break over the file's rows), so every path gets the bulk job's prompts."""
    from tokenizer_ext import cell_sentences

    return cell_sentences(path, use_raw=True, top_k=GENES_PER_CELL)


def build_workload(
    checkpoint_dir: Path, plans: dict[str, CellPlan], cells: list[Cell], files_dir: Path
) -> dict:
    """Prompts of every workload for one checkpoint, as a JSON-ready dict.

    Each slice of cells (warm-up, each run) is also written to an ``.h5ad`` under
    ``files_dir`` for the bulk job, and its sentences are ranked from that file. Each item
    holds the task inputs (for the gateway and the bulk path) and the token ids our prompt
    builder makes from them (for HF and raw vLLM): all paths get the same ids.
    """
    from serving.core.prompt_builder import PromptBuilder

    builder = PromptBuilder.from_model(checkpoint_dir)
    out = {}
    for name, plan in plans.items():
        spec = WORKLOADS[name]
        if plan.total > len(cells):
            raise ValueError(f"{name} needs {plan.total} cells, {len(cells)} available")
        bounds = [(0, plan.warmup_cells)] + [
            (start, start + plan.cells_per_run)
            for start in range(plan.warmup_cells, plan.total, plan.cells_per_run)
        ]
        slices, files = [], []
        for index, (start, stop) in enumerate(bounds):
            chosen = cells[start:stop]
            path = write_cells_h5ad([c.row for c in chosen], files_dir / f"{name}-{index}.h5ad")
            items = []
            for cell, sentence in zip(chosen, file_sentences(path), strict=True):
                inputs = task_inputs(spec, Cell(cell.row, sentence, cell.label))
                built = builder.build(spec.task, inputs)
                items.append(
                    {"row": cell.row, "inputs": inputs, "prompt_ids": list(built.token_ids)}
                )
            slices.append(items)
            files.append(str(path))
        prompt_tokens = [len(i["prompt_ids"]) for run in slices[1:] for i in run]
        out[name] = {
            "task": spec.task,
            "params": spec.params(),
            "output_tokens": spec.output_tokens,
            "plan": plan.__dict__,
            "mean_prompt_tokens": round(float(np.mean(prompt_tokens)), 1),
            "warmup": slices[0],
            "warmup_file": files[0],
            "runs": slices[1:],
            "run_files": files[1:],
        }
    return out


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
