"""The input ``.h5ad``: opened and checked before any engine time is spent, then read in
ranked row chunks (`iter_cells`).

Only small parts are loaded whole (the ``obs`` columns a run names, the gene names); cell
names and the expression matrix are read in row chunks, so files larger than memory work
and a million cells' names never sit in memory. Every problem is reported as an
`InputError` that says what is wrong and which option fixes it.

The whole file is ranked in row order with one tie-break RNG, as C2S does, so a cell's
sentence never depends on the chunk size or on which shards a resumed run still needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from serving.bulk.config import ReadingConfig
from serving.bulk.errors import InputError
from tokenizer_ext import GeneVocabulary, GeneVocabularyError, open_expression
from tokenizer_ext.expression_source import RankedChunk, iter_ranked_chunks, row_chunks

#: log1p of normalised counts stays far below this; plain normalised values do not
LOG_SCALE_MAX = 30.0
#: cells named in an error message
EXAMPLES = 5
#: cell names read at a time
NAME_CHUNK_ROWS = 65_536
#: the most bytes one chunk of a dense matrix may take (sparse chunks are smaller)
READ_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ValueProfile:
    """What a scan of the expression values found.

    Attributes
    ----------
    kind
        ``raw_counts`` (all integers), ``log_normalised`` or ``normalised``. All three rank
        the same way within a cell: C2S's normalise-then-log1p is monotone per cell.
    max_value
        The largest value.
    empty_rows
        Rows with no positive value: they have no cell sentence.
    cells_by_genes_expressed
        How many cells express each number of genes (index: genes), rather than a
        count per cell: its size does not grow with the cells.
    """

    kind: str
    max_value: float
    empty_rows: np.ndarray
    cells_by_genes_expressed: np.ndarray

    def median_genes_expressed(self) -> float:
        """The median over cells of the genes each expresses (as ``np.median`` gives it)."""
        counts = self.cells_by_genes_expressed
        n = int(counts.sum())
        if n == 0:
            return 0.0
        below = np.cumsum(counts)
        lower = int(np.searchsorted(below, (n - 1) // 2, side="right"))
        upper = int(np.searchsorted(below, n // 2, side="right"))
        return (lower + upper) / 2

    def cells_expressing_between(self, low: int, high: int) -> int:
        """Cells expressing at least ``low`` and fewer than ``high`` genes."""
        return int(self.cells_by_genes_expressed[low:high].sum())


@dataclass(frozen=True)
class InputFile:
    """The checked input: what the job needs besides the matrix chunks.

    Attributes
    ----------
    path
        The ``.h5ad`` file.
    obs
        The ``obs`` columns the run names (``--label-key``, ``--group-key``), on a
        ``RangeIndex`` of the rows: the cell names are read chunk by chunk when needed.
    vocabulary
        The genes of the chosen matrix as C2S words.
    values
        The value scan.
    has_umap
        Whether ``obsm["X_umap"]`` exists.
    notes
        Findings worth reporting that do not stop the run.
    """

    path: Path
    obs: pd.DataFrame
    vocabulary: GeneVocabulary
    values: ValueProfile
    has_umap: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    def summary(self) -> dict[str, object]:
        """The facts a report shows."""
        return {
            "n_cells": self.n_obs,
            "n_genes": self.vocabulary.n_columns,
            "organism": self.vocabulary.organism,
            "value_kind": self.values.kind,
            "max_value": self.values.max_value,
            "empty_cells": len(self.values.empty_rows),
            "median_genes_expressed": float(self.values.median_genes_expressed()),
            "notes": list(self.notes),
        }


def inspect_input(config: ReadingConfig) -> InputFile:
    """Open ``config.input``, check it, and describe it.

    Raises
    ------
    InputError
        A missing or unreadable file, a missing matrix or column, Ensembl ids or colliding
        gene names, NaN, infinite or negative values, empty cells (unless skipped).
    """
    import h5py

    path = Path(config.input)
    if not path.is_file():
        raise InputError(f"The input file {path} does not exist.")
    try:
        with h5py.File(path, "r") as file:
            encoding = _check_matrix(file, config)
            obs = _read_obs_columns(file["obs"], config)
            var = _read_frame(file, "raw/var" if config.use_raw else "var")
            has_umap = "obsm" in file and "X_umap" in file["obsm"]
            names_repeat = _names_repeat(file["obs"])
    except OSError as exc:
        raise InputError(f"{path} is not a readable .h5ad (HDF5) file: {exc}") from None
    vocabulary = gene_vocabulary(var, config)
    values = scan_values(config, rows_per_read(config, vocabulary.n_columns))
    notes = _notes(config, values, names_repeat)
    if encoding == "csc_matrix":
        notes += (
            "The matrix is stored as CSC: every row chunk reads whole columns, which is slow "
            "for large files. Store it as CSR for chunked reading.",
        )
    return InputFile(path, obs, vocabulary, values, has_umap, notes)


def rows_per_read(config: ReadingConfig, n_vars: int) -> int:
    """Rows per chunk: ``config.read_rows``, fewer when a dense chunk would be too large."""
    return max(1, min(config.read_rows, READ_BYTES // max(1, 4 * n_vars)))


def iter_cells(
    config: ReadingConfig,
    vocabulary: GeneVocabulary,
    *,
    rows: tuple[int, int] | None = None,
    rng: np.random.RandomState | None = None,
) -> Iterator[RankedChunk]:
    """The input's rows in order (``rows``: only ``start:stop``, with the tie-break ``rng``
    where ranking the rows before them left it), ranked and cut to the prompt's genes."""
    yield from iter_ranked_chunks(
        config.input,
        vocabulary=vocabulary,
        tie_break=config.tie_break,
        seed=config.rank_seed,
        top_k=config.genes_per_cell,
        layer=config.layer,
        use_raw=config.use_raw,
        chunk_size=rows_per_read(config, vocabulary.n_columns),
        rows=rows,
        rng=rng,
    )


def _check_matrix(file, config: ReadingConfig) -> str:
    """The chosen matrix's storage (``array``, ``csr_matrix``...); raises if it is missing."""
    key = {"raw": "raw/X", "X": "X"}.get(config.matrix_name, config.matrix_name)
    if key in file:
        return str(file[key].attrs.get("encoding-type", "array"))
    if config.use_raw:
        raise InputError("--use-raw was given, but the file has no .raw matrix (raw/X).")
    layers = sorted(file["layers"]) if "layers" in file else []
    raise InputError(f"The file has no layer {config.layer!r}; its layers are {layers or 'none'}.")


def _read_frame(file, key: str) -> pd.DataFrame:
    import anndata.io

    return anndata.io.read_elem(file[key])


def _index_dataset(obs_group):
    return obs_group[obs_group.attrs.get("_index", "_index")]


def _read_obs_columns(obs_group, config: ReadingConfig) -> pd.DataFrame:
    """The ``obs`` columns ``config`` names, on a ``RangeIndex``; raises for a missing one."""
    import anndata.io

    n_obs = len(_index_dataset(obs_group))
    if n_obs == 0:
        raise InputError("The input has no cells.")
    existing = [str(c) for c in obs_group.attrs.get("column-order", [])]
    columns = {}
    for option, column in config.obs_columns.items():
        if column is None:
            continue
        if column not in existing:
            raise InputError(
                f"{option} {column!r} is not a column of obs; the columns are {sorted(existing)}."
            )
        columns[column] = anndata.io.read_elem(obs_group[column])
    return pd.DataFrame(columns, index=pd.RangeIndex(n_obs))


def _names_repeat(obs_group) -> bool:
    """Whether two cells share a name, from 64-bit hashes of the names read in chunks (a
    collision among a million names has odds of about 1 in 30 million; it only adds a note)."""
    from tokenizer_ext.expression_source import FileIndex

    dataset = _index_dataset(obs_group)
    names = FileIndex(dataset) if _is_text(dataset) else _read_all(dataset)
    hashes = [
        pd.util.hash_array(np.asarray(names[a:b], dtype=object))
        for a, b in row_chunks(len(names), NAME_CHUNK_ROWS)
    ]
    return len(np.unique(np.concatenate(hashes))) < len(names)


def _is_text(dataset) -> bool:
    import h5py

    return isinstance(dataset, h5py.Dataset) and h5py.check_string_dtype(dataset.dtype) is not None


def _read_all(element) -> np.ndarray:
    import anndata.io

    return np.asarray(anndata.io.read_elem(element)).astype(str)


def gene_vocabulary(var: pd.DataFrame, config: ReadingConfig) -> GeneVocabulary:
    """The C2S vocabulary of the chosen matrix's genes (``var_names`` or a symbols column).

    Raises
    ------
    InputError
        For Ensembl ids, names that collide after upper-casing, or a missing column.
    """
    column = config.gene_symbols_column
    if column is not None and column not in var.columns:
        raise InputError(
            f"--gene-symbols-column {column!r} is not a column of var; the columns are "
            f"{sorted(map(str, var.columns))}."
        )
    names = var[column] if column is not None else var.index
    try:
        return GeneVocabulary([str(n) for n in names], organism=config.organism)
    except GeneVocabularyError as exc:
        hint = "" if column is not None else _symbols_hint(var)
        raise InputError(f"The gene names cannot be used: {exc}{hint}") from None


def _symbols_hint(var: pd.DataFrame) -> str:
    """Point at ``var`` columns that hold text, which may be gene symbols."""
    text = [
        str(c) for c in var.columns if var[c].dtype == object or str(var[c].dtype) == "category"
    ]
    if not text:
        return ""
    return f" With this CLI, pass --gene-symbols-column with one of {text}."


def scan_values(config: ReadingConfig, chunk_rows: int) -> ValueProfile:
    """Read the chosen matrix in row chunks and profile its values.

    Raises
    ------
    InputError
        For NaN, infinite or negative values, and for empty cells unless they are skipped.
    """
    integral, max_value = True, 0.0
    by_genes = np.zeros(1, dtype=np.int64)
    empty = []
    with open_expression(config.input, layer=config.layer, use_raw=config.use_raw) as source:
        for start, stop in row_chunks(source.n_obs, chunk_rows):
            chunk = source.read_values(start, stop)  # no column indices: half the reads
            data = chunk.data
            lowest, highest = (data.min(), data.max()) if data.size else (0, 0)
            _check_finite_non_negative(chunk, start, source.obs_names, config, lowest, highest)
            if data.size:
                max_value = max(max_value, float(highest))
                integral = integral and bool(np.all(data == np.round(data)))
            expressed = _positive_per_row(chunk, all_positive=lowest > 0)
            empty.append(start + np.flatnonzero(expressed == 0))
            counts = np.bincount(expressed)
            if len(counts) > len(by_genes):
                by_genes = np.concatenate(
                    [by_genes, np.zeros(len(counts) - len(by_genes), np.int64)]
                )
            by_genes[: len(counts)] += counts
        empty_rows = np.concatenate(empty) if empty else np.zeros(0, np.int64)
        if len(empty_rows) and not config.skip_empty_cells:
            names = [_name(source.obs_names, r) for r in empty_rows[:EXAMPLES]]
            raise InputError(
                f"{len(empty_rows)} cell(s) express no gene, so they have no cell sentence "
                f"(e.g. {names}). Filter them out (scanpy: sc.pp.filter_cells(adata, "
                "min_genes=1)) or pass --skip-empty-cells to give them an empty prediction."
            )
    kind = (
        "raw_counts"
        if integral
        else ("log_normalised" if max_value < LOG_SCALE_MAX else "normalised")
    )
    return ValueProfile(kind, max_value, empty_rows, by_genes)


def _positive_per_row(chunk, all_positive: bool) -> np.ndarray:
    if all_positive:  # no stored zeros, as usual: a row's stored entries (20x faster)
        return np.diff(chunk.indptr)
    positive = np.concatenate([[0], np.cumsum(chunk.data > 0)])
    return positive[chunk.indptr[1:]] - positive[chunk.indptr[:-1]]


def _check_finite_non_negative(chunk, start: int, obs_names, config, lowest, highest) -> None:
    data = chunk.data
    if data.size == 0 or (np.isfinite(highest) and lowest >= 0):
        return  # the chunk's two reductions, no masks: NaN and infinities show in the maximum
    bad_finite = ~np.isfinite(data)
    if bad_finite.any():
        raise InputError(
            f"The expression values contain NaN or infinite values (first in cell "
            f"{_cell_of(chunk, bad_finite, start, obs_names)!r}). Fix or drop those cells."
        )
    negative = data < 0
    if negative.any():
        cell = _cell_of(chunk, negative, start, obs_names)
        raise InputError(
            f"The {config.matrix_name} matrix has negative values (e.g. in cell {cell!r}): "
            "it looks scaled (sc.pp.scale). C2S ranks non-negative expression: use "
            "--use-raw if .raw holds log-normalised values, or --layer with counts or "
            "log-normalised values."
        )


def _cell_of(chunk, mask: np.ndarray, start: int, obs_names) -> str:
    """The name of the cell holding the first flagged stored value."""
    first = int(np.argmax(mask))
    row = int(np.searchsorted(chunk.indptr, first, side="right") - 1)
    return _name(obs_names, start + row)


def _name(obs_names, row: int) -> str:
    """Cell ``row``'s name (``obs_names``: an array or a `FileIndex`, read by slices)."""
    return str(obs_names[row : row + 1][0])


def _notes(config: ReadingConfig, values: ValueProfile, names_repeat: bool) -> tuple[str, ...]:
    notes = []
    if values.kind == "raw_counts":
        notes.append(
            "The values are integers (raw counts?). They are used as they are: "
            "normalize_total and log1p do not change the order of genes within a cell."
        )
    if len(values.empty_rows):
        notes.append(f"{len(values.empty_rows)} empty cell(s) get an empty prediction.")
    short = values.cells_expressing_between(1, config.genes_per_cell)
    if short:
        notes.append(
            f"{short} cell(s) express fewer than {config.genes_per_cell} genes; their "
            "prompts list all they have (as C2S does)."
        )
    if names_repeat:
        notes.append("Cell names (obs_names) repeat; rows are matched by position.")
    return tuple(notes)
