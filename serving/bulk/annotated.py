"""``annotated.h5ad``: a copy of the input with the predictions in ``obs`` and the run's
provenance in ``uns``.

The copy is made file to file and only ``obs`` and one ``uns`` entry are rewritten, so
the matrices are never loaded: this works for files larger than memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from serving.bulk import atomic

#: the ``uns`` key of the provenance record
UNS_KEY = "c2s_annotation"


def write_annotated(
    source: Path,
    path: Path,
    columns: Mapping[str, Sequence[Any]],
    provenance: Mapping[str, Any],
) -> None:
    """Copy ``source`` to ``path`` (atomically) with ``columns`` added to ``obs`` (text as
    categoricals, numbers and flags as they are) and ``provenance`` as ``uns[UNS_KEY]``."""
    import anndata.io
    import h5py

    with atomic.replacing(path) as temp:
        shutil.copyfile(source, temp)
        with h5py.File(temp, "r+") as file:
            obs = anndata.io.read_elem(file["obs"])
            for name, values in columns.items():
                obs[name] = _obs_column(list(values))
            anndata.io.write_elem(file, "obs", obs)
            if "uns" in file:
                anndata.io.write_elem(file["uns"], UNS_KEY, _storable(provenance))
            else:
                anndata.io.write_elem(file, "uns", {UNS_KEY: _storable(provenance)})


def _obs_column(values: list[Any]) -> Any:
    """Scores stay floats (missing: NaN) and flags booleans; labels become categoricals."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        # h5ad holds no nullable booleans: a missing flag (an empty cell) is False
        return pd.array([bool(v) for v in values], dtype=bool)
    if present and all(isinstance(v, int | float) for v in present):
        return pd.array([float("nan") if v is None else float(v) for v in values], dtype=float)
    return pd.Categorical(values)


def _storable(value: Any) -> Any:
    """``value`` with what HDF5 cannot hold (``None``, tuples, paths) made storable."""
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
