"""Prompt-id throughput of tokenizer_ext vs cell2sentence's own path, on one core.

Measures cells/s for 200-gene cell-type-prediction prompt ids (C2S template 0):

- ours: ``iter_ranked_chunks`` + ``PromptEncoder.encode_batch`` (ids from cached pieces),
  with the vectorised ``stable`` tie-break and with the C2S-identical ``c2s`` one;
- C2S: ``generate_vocabulary`` + ``generate_sentences``, ``str.format`` of the template on
  the first 200 words, then the Hugging Face Pythia tokenizer on the batch of prompts.

Data: scanpy's pbmc68k_reduced ``.raw`` (log-normalised) tiled to >= 100k cells. C2S's
path is timed on a subset and extrapolated per cell; its ids are checked identical to ours
(``c2s`` tie-break) on that subset. A second part writes the tiled cells to an ``.h5ad``
and reads it back in chunks in a child process whose address space is capped below the
file size (RLIMIT_AS), reporting the child's peak RSS.

Run: ``.venv/bin/python -m benchmarks.tokenizer_bench``; the last line printed is JSON,
also written to ``benchmarks/results/tokenizer.json``.
"""

from __future__ import annotations

import os

# One core: pin before numpy/tokenizers start thread pools (threads inherit affinity).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["TQDM_DISABLE"] = "1"
_CORE = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {_CORE})

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from benchmarks.machine import REPO_ROOT  # noqa: E402
from benchmarks.machine import machine_info as shared_machine_info  # noqa: E402

PYTHIA_DIR = REPO_ROOT.parent / "shared" / "pythia-tokenizer"
RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "tokenizer.json"
TOP_K = 200
ORGANISM = "Homo sapiens"
CHUNK_SIZE = 4096


def c2s_package_dir() -> Path:
    """Folder of the installed cell2sentence (found without importing it: torch)."""
    spec = importlib.util.find_spec("cell2sentence")
    if spec is None or spec.origin is None:
        sys.exit("cell2sentence is not installed: pip install --no-deps cell2sentence==1.2.0")
    return Path(spec.origin).parent


def load_c2s_utils():
    """``cell2sentence.utils`` loaded standalone (the package __init__ imports torch)."""
    path = c2s_package_dir() / "utils.py"
    spec = importlib.util.spec_from_file_location("c2s_reference_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell_type_template() -> str:
    prompts = c2s_package_dir() / "prompts" / "single_cell_cell_type_prediction_prompts.json"
    return json.loads(prompts.read_text("utf-8"))["model_input"][0]


def tiled_pbmc(n_cells: int):
    """pbmc68k_reduced's ``.raw`` as an AnnData, rows tiled to at least ``n_cells``."""
    import anndata as ad
    import scanpy as sc

    raw = sc.datasets.pbmc68k_reduced().raw.to_adata()
    matrix = sp.csr_matrix(raw.X)
    matrix.sort_indices()
    reps = -(-n_cells // raw.n_obs)
    tiled = ad.AnnData(sp.vstack([matrix] * reps, format="csr"))
    tiled.var_names = raw.var_names
    tiled.obs_names = [f"c{i}" for i in range(tiled.n_obs)]
    return tiled


def time_ours(adata, encoder, template: str, tie_break: str, as_lists: bool) -> tuple[float, list]:
    """Seconds for prompt ids of every cell, and the first chunk's ids (converted untimed)."""
    from tokenizer_ext import iter_ranked_chunks

    first_batch = None
    start = time.perf_counter()
    for chunk in iter_ranked_chunks(
        adata,
        vocabulary=encoder.vocabulary,
        tie_break=tie_break,
        top_k=TOP_K,
        chunk_size=CHUNK_SIZE,
    ):
        batch = encoder.encode_batch(template, chunk.ranked, top_k=TOP_K, organism=ORGANISM)
        if as_lists:
            batch.to_tuples()
        first_batch = first_batch or batch
    elapsed = time.perf_counter() - start
    return elapsed, [list(ids) for ids in first_batch.to_tuples()] if first_batch else []


def time_c2s(adata, c2s_utils, hf_tokenizer, template: str) -> tuple[float, list]:
    """Seconds for C2S's sentence + format + HF tokenizer path, and its ids."""
    adata = adata.copy()
    start = time.perf_counter()
    vocab = c2s_utils.generate_vocabulary(adata)
    sentences = c2s_utils.generate_sentences(adata, vocab, random_state=42)
    prompts = [
        template.format(
            num_genes=TOP_K, organism=ORGANISM, cell_sentence=" ".join(s.split(" ")[:TOP_K])
        )
        for s in sentences
    ]
    ids = hf_tokenizer(prompts)["input_ids"]
    return time.perf_counter() - start, ids


def throughput(n_cells: int, runs: list[float]) -> dict:
    median = statistics.median(runs)
    return {
        "cells": n_cells,
        "runs_s": [round(r, 4) for r in runs],
        "median_s": round(median, 4),
        "cells_per_s": round(n_cells / median, 1),
        "us_per_cell": round(median / n_cells * 1e6, 2),
    }


def measure_throughput(n_cells: int, c2s_cells: int, repeats: int) -> dict:
    import contextlib
    import io

    from transformers import AutoTokenizer

    from tokenizer_ext import GeneTokenCache, GeneVocabulary, PromptEncoder

    template = cell_type_template()
    adata = tiled_pbmc(n_cells)
    encoder = PromptEncoder(
        GeneTokenCache(PYTHIA_DIR / "tokenizer.json", GeneVocabulary(list(adata.var_names)))
    )
    results: dict = {}
    for name, tie_break, as_lists in (
        ("ours_stable_ids_arrays", "stable", False),
        ("ours_stable_ids_lists", "stable", True),
        ("ours_c2s_tiebreak_ids_lists", "c2s", True),
    ):
        time_ours(adata[:CHUNK_SIZE], encoder, template, tie_break, as_lists)  # warm caches
        runs, first = [], []
        for _ in range(repeats):
            elapsed, first = time_ours(adata, encoder, template, tie_break, as_lists)
            runs.append(elapsed)
        results[name] = throughput(adata.n_obs, runs)
        results[name]["first_chunk_ids"] = first if tie_break == "c2s" else None

    c2s_utils = load_c2s_utils()
    hf_tokenizer = AutoTokenizer.from_pretrained(PYTHIA_DIR)
    subset = adata[:c2s_cells].copy()
    runs, c2s_ids = [], []
    for _ in range(repeats):
        with contextlib.redirect_stderr(io.StringIO()):  # C2S prints a transpose warning
            elapsed, c2s_ids = time_c2s(subset, c2s_utils, hf_tokenizer, template)
        runs.append(elapsed)
    results["c2s_path"] = throughput(c2s_cells, runs)
    results["c2s_path"]["extrapolated"] = (
        f"measured on the first {c2s_cells} of {adata.n_obs} cells; cells/s applies per cell"
    )
    ours_first = results["ours_c2s_tiebreak_ids_lists"].pop("first_chunk_ids")
    for name in ("ours_stable_ids_arrays", "ours_stable_ids_lists"):
        results[name].pop("first_chunk_ids")
    checked = min(len(ours_first), len(c2s_ids))
    results["ids_identical_to_c2s"] = {
        "cells_checked": checked,
        "identical": ours_first[:checked] == c2s_ids[:checked],
        "mean_prompt_tokens": round(float(np.mean([len(i) for i in c2s_ids])), 1),
    }
    c2s_rate = results["c2s_path"]["cells_per_s"]
    results["ratio_vs_c2s"] = {
        name: round(results[name]["cells_per_s"] / c2s_rate, 1)
        for name in (
            "ours_stable_ids_arrays",
            "ours_stable_ids_lists",
            "ours_c2s_tiebreak_ids_lists",
        )
    }
    results["dataset"] = {
        "source": "scanpy.datasets.pbmc68k_reduced().raw (log-normalised), rows tiled",
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "nnz": int(adata.X.nnz),
    }
    return results


_CAPPED_READER = r"""
import os, resource, sys, time, json
path, chunk_size, extra_bytes, top_k, tokenizer = sys.argv[1:6]
import numpy as np
from tokenizer_ext import GeneTokenCache, PromptEncoder, iter_ranked_chunks, open_expression
template = sys.stdin.read()
with open_expression(path) as source:
    names = source.var_names
encoder = PromptEncoder(GeneTokenCache(tokenizer, names))

def status_bytes(field):
    # VmHWM is this process's own RSS peak; ru_maxrss would carry the parent's over exec.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

cap = status_bytes("VmSize") + int(extra_bytes)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
baseline_rss = status_bytes("VmHWM")
n, tokens, start = 0, 0, time.perf_counter()
for chunk in iter_ranked_chunks(path, vocabulary=encoder.vocabulary, tie_break="stable",
                                top_k=int(top_k), chunk_size=int(chunk_size)):
    batch = encoder.encode_batch(template, chunk.ranked, top_k=int(top_k), organism="Homo sapiens")
    n += len(batch)
    tokens += int(batch.n_tokens.sum())
elapsed = time.perf_counter() - start
peak_rss = status_bytes("VmHWM")
try:
    import anndata
    anndata.read_h5ad(path)
    full_load = "succeeded"
except MemoryError:
    full_load = "MemoryError"
print(json.dumps({"cells": n, "prompt_tokens": tokens, "seconds": round(elapsed, 2),
                  "address_space_cap_bytes": cap, "baseline_rss_bytes": baseline_rss,
                  "peak_rss_bytes": peak_rss, "full_load_under_cap": full_load}))
"""


def measure_backed_memory(n_cells: int, chunk_size: int) -> dict:
    """Read an .h5ad larger than the memory the reading process is allowed."""
    adata = tiled_pbmc(n_cells)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiled.h5ad"
        adata.write_h5ad(path)
        file_bytes = path.stat().st_size
        matrix_bytes = adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes
        del adata
        extra = file_bytes // 2
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                _CAPPED_READER,
                str(path),
                str(chunk_size),
                str(extra),
                str(TOP_K),
                str(PYTHIA_DIR / "tokenizer.json"),
            ],
            input=cell_type_template(),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            check=False,
        )
    if child.returncode != 0:
        return {"error": child.stderr[-2000:]}
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "method": (
            "child process imports everything, then caps its address space (RLIMIT_AS) at "
            "its current size + half the file size and reads the file in row chunks into "
            "prompt ids; peak RSS is VmHWM from /proc/self/status (baseline taken after "
            "imports, before reading); a full anndata.read_h5ad under the same "
            "cap is attempted afterwards as a control"
        ),
        "file_bytes": file_bytes,
        "in_memory_matrix_bytes": int(matrix_bytes),
        "allowed_extra_address_space_bytes": int(extra),
        "chunk_size": chunk_size,
        **report,
        "peak_rss_minus_baseline_bytes": report["peak_rss_bytes"] - report["baseline_rss_bytes"],
    }


def machine_info() -> dict:
    """The shared machine record, plus the pinned core and this suite's package versions."""
    versions = {
        pkg: importlib.metadata.version(pkg)
        for pkg in ("numpy", "scipy", "anndata", "tokenizers", "transformers", "cell2sentence")
    }
    return {**shared_machine_info(), "pinned_to_core": _CORE, "threads": 1, "versions": versions}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--c2s-cells", type=int, default=2_100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-cells", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    args = parser.parse_args(argv)
    if not (PYTHIA_DIR / "tokenizer.json").exists():
        sys.exit(f"Pythia tokenizer not found at {PYTHIA_DIR}")

    result = {
        "benchmark": "tokenizer_ext prompt ids (200-gene cell type prediction, template 0)",
        "command": " ".join(
            [".venv/bin/python -m benchmarks.tokenizer_bench", *(argv or sys.argv[1:])]
        ),
        "machine": machine_info(),
        "throughput": measure_throughput(args.cells, args.c2s_cells, args.repeats),
        "backed_memory": measure_backed_memory(args.memory_cells, chunk_size=2048),
    }
    ratio = result["throughput"]["ratio_vs_c2s"]["ours_stable_ids_lists"]
    result["goal"] = {"ratio_at_least": 25, "ratio": ratio, "met": ratio >= 25}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
