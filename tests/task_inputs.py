"""One valid input per task, small enough for fast engine tests."""

from __future__ import annotations

CELL = "CD74 HLA-DRA CD79A MS4A1 CD19 CD37 HLA-DPB1 CD52"
CELLS = [CELL, "CD3D CD3E IL7R LTB CD2", "LYZ S100A9 S100A8 CST3 FCN1"]

TASK_INPUTS: dict[str, dict] = {
    "cell_generation": {"n_genes": 8},
    "cell_type_prediction": {"cell": CELL, "n_genes": 8},
    "cell_type_generation": {"cell_type": "B cell", "n_genes": 8},
    "multi_cell_generation": {"n_genes": 5, "n_cells": 2},
    "tissue_prediction": {"cells": CELLS, "n_genes": 5},
    "multi_cell_type_prediction": {"cells": CELLS, "n_genes": 5},
    "tissue_generation": {"tissue": "peripheral blood", "n_genes": 5, "n_cells": 2},
    "multi_cell_type_generation": {"cell_types": ["B cell", "CD14+ Monocyte"], "n_genes": 5},
    "cells_to_abstract": {"cells": CELLS, "n_genes": 5},
    "abstract_to_cells": {
        "abstract": "Peripheral blood mononuclear cells.",
        "n_genes": 5,
        "n_cells": 2,
    },
    "gene_set_to_genes": {"gene_set_name": "B cell markers", "n_genes": 5},
    "genes_to_gene_set": {"genes": ["CD79A", "MS4A1", "CD19"]},
}
