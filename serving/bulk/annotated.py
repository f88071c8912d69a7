"""``annotated.h5ad``: a copy of the input with the predictions in ``obs`` and the run's
provenance in ``uns``.

The copy is made file to file and only the new ``obs`` columns and one ``uns`` entry are
written, so neither the matrices nor the cell names are loaded: this works for files
larger than memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.bulk import atomic

#: the ``uns`` key of the provenance record
UNS_KEY = "c2s_annotation"


def write_annotated(
    source: Path,
    path: Path,
    columns: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> None:
    """Copy ``source`` to ``path`` (atomically) with ``columns`` (arrays or categoricals,
    `serving.bulk.row_tally.ObsColumn.finish`) added to ``obs`` and ``provenance`` as
    ``uns[UNS_KEY]``.

    Only the new columns are written into the copy's ``obs`` group (a column of the same
    name is replaced in place), so the cell names and the other columns are never loaded.
    """
    import anndata.io
    import h5py

    with atomic.replacing(path) as temp:
        shutil.copyfile(source, temp)
        with h5py.File(temp, "r+") as file:
            obs = file["obs"]
            if str(obs.attrs.get("encoding-version", "")) != "0.2.0":
                _rewrite_obs(file, columns)  # an older layout: rewritten whole
            else:
                order = [str(c) for c in obs.attrs.get("column-order", [])]
                for name, values in columns.items():
                    if name in obs:
                        del obs[name]
                    anndata.io.write_elem(obs, name, values)
                order += [name for name in columns if name not in order]
                obs.attrs["column-order"] = order
            if "uns" in file:
                anndata.io.write_elem(file["uns"], UNS_KEY, _storable(provenance))
            else:
                anndata.io.write_elem(file, "uns", {UNS_KEY: _storable(provenance)})


def _rewrite_obs(file, columns: Mapping[str, Any]) -> None:
    import anndata.io

    obs = anndata.io.read_elem(file["obs"])
    for name, values in columns.items():
        obs[name] = values
    anndata.io.write_elem(file, "obs", obs)


def _storable(value: Any) -> Any:
    """``value`` with what HDF5 cannot hold (``None``, tuples, paths) made storable."""
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
