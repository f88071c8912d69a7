"""Fixtures of the tokenizer_ext tests: real cells, tokenizers, and C2S as the reference.

cell2sentence is only a test-time reference (its licence forbids vendoring it). Its
``utils`` module is loaded from the installed file without the package ``__init__``,
which would import torch and transformers.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHIA_TOKENIZER = REPO_ROOT.parent / "shared" / "pythia-tokenizer" / "tokenizer.json"
# This folder is named like the package; with a bare `pytest` (no cwd on sys.path) it
# would shadow tokenizer_ext as a namespace package ahead of the editable install.
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
if getattr(sys.modules.get("tokenizer_ext"), "__file__", "") is None:
    del sys.modules["tokenizer_ext"]
MATRIX_KINDS = ("dense", "csr", "csc", "backed", "backed_csc")
C2S_TEMPLATE_FILES = (
    "single_cell_cell_type_prediction_prompts.json",
    "single_cell_cell_type_conditional_generation_prompts.json",
    "multi_cell_tissue_prediction_prompts.json",
    "multi_cell_tissue_conditional_generation.json",
    "multi_cell_natural_lang_interpretation_prompts.json",
)
MOUSE_GENES = (
    "Cd209a",
    "mt-Co1",
    "H2-K1",
    "Hba-a1",
    "Gm42418",
    "1700001C19Rik",
    "Lyz2",
    "Rpl13a-ps1",
)


def _c2s_file(name: str) -> Path:
    try:
        files = importlib.metadata.files("cell2sentence") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("cell2sentence is not installed (test-only reference)")
    matches = [f for f in files if str(f).replace("\\", "/").endswith(f"cell2sentence/{name}")]
    if not matches:
        pytest.skip(f"cell2sentence/{name} not found")
    return Path(matches[0].locate())


@pytest.fixture(scope="session")
def c2s_utils():
    """``cell2sentence.utils`` (the reference implementation), loaded standalone."""
    spec = importlib.util.spec_from_file_location("c2s_reference_utils", _c2s_file("utils.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def c2s_templates() -> dict[str, dict[str, list[str]]]:
    """The five public C2S template sets, by file name."""
    return {
        name: json.loads(_c2s_file(f"prompts/{name}").read_text("utf-8"))
        for name in C2S_TEMPLATE_FILES
    }


@pytest.fixture(scope="session")
def pythia_tokenizer_path() -> Path:
    if not PYTHIA_TOKENIZER.exists():
        pytest.skip("../shared/pythia-tokenizer is not beside the repository")
    return PYTHIA_TOKENIZER


@pytest.fixture(scope="session")
def pbmc():
    """scanpy's pbmc68k_reduced: 700 cells, log-normalised counts in ``.raw``."""
    scanpy = pytest.importorskip("scanpy")
    return scanpy.datasets.pbmc68k_reduced()


@pytest.fixture(scope="session")
def pbmc_raw(pbmc) -> ad.AnnData:
    """``pbmc.raw`` as its own AnnData (CSR with unsorted indices, as shipped)."""
    return pbmc.raw.to_adata()


@pytest.fixture(scope="session")
def count_adata() -> ad.AnnData:
    """Integer counts with many ties (Poisson), 120 cells x 300 genes."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(0.8, size=(120, 300)).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(counts))
    adata.var_names = [f"GENE{i}" for i in range(300)]
    adata.obs_names = [f"cell{i}" for i in range(120)]
    return adata


def as_matrix_kind(adata: ad.AnnData, kind: str, tmp_path: Path) -> ad.AnnData:
    """The same cells with ``X`` dense, CSR, CSC, or backed from an ``.h5ad`` (CSR or CSC)."""
    if kind.startswith("backed"):
        path = tmp_path / "cells.h5ad"
        stored = as_matrix_kind(adata, "csc", tmp_path) if kind == "backed_csc" else adata
        stored.write_h5ad(path)
        return ad.read_h5ad(path, backed="r")
    converted = adata.copy()
    x = adata.X
    converted.X = {
        "dense": lambda: np.asarray(x.toarray() if sp.issparse(x) else x),
        "csr": lambda: sp.csr_matrix(x),
        "csc": lambda: sp.csc_matrix(x),
    }[kind]()
    return converted


@pytest.fixture(scope="session")
def demo_tokenizer(pbmc_raw, c2s_templates):
    """A tiny ByteLevel BPE in which every gene is one token (like the project's demo).

    Words may contain inner ``.``/``-`` so ``HLA-DRA`` and ``RP11-34P13.7`` stay whole.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    pieces = r" ?[\p{L}\p{N}](?:[\p{L}\p{N}._\-]*[\p{L}\p{N}])?| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pieces), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    genes = [g.upper() for g in list(pbmc_raw.var_names) + list(MOUSE_GENES)]
    texts = [t for d in c2s_templates.values() for t in d["model_input"]]
    corpus = texts + [" " + " ".join(genes), "\n".join(genes)] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="session")
def gene_vocabulary(pbmc_raw):
    """pbmc68k's genes (with '-', '.', digits) plus lower-case mouse symbols."""
    from tokenizer_ext import GeneVocabulary

    return GeneVocabulary(list(pbmc_raw.var_names) + list(MOUSE_GENES))


@pytest.fixture(scope="session")
def ranked_pbmc(pbmc_raw):
    """pbmc cells ranked (word indices agree with ``gene_vocabulary``'s first 765)."""
    from tests.tokenizer_ext.sentence_helpers import rank_cells

    return rank_cells(pbmc_raw)


@pytest.fixture(scope="session", params=["pythia", "demo"])
def prompt_encoder(request, gene_vocabulary):
    """A PromptEncoder on the real Pythia tokenizer, and on a demo one (genes whole)."""
    from tokenizer_ext import GeneTokenCache, PromptEncoder

    name = request.param
    tokenizer = request.getfixturevalue(
        "pythia_tokenizer_path" if name == "pythia" else "demo_tokenizer"
    )
    return PromptEncoder(GeneTokenCache(tokenizer, gene_vocabulary))
