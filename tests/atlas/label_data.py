"""Label sets shared by the label tests."""

from __future__ import annotations

#: pbmc68k_reduced's bulk_labels
PBMC_LABELS = (
    "CD14+ Monocyte",
    "CD19+ B",
    "CD34+",
    "CD4+/CD25 T Reg",
    "CD4+/CD45RA+/CD25- Naive T",
    "CD4+/CD45RO+ Memory",
    "CD56+ NK",
    "CD8+ Cytotoxic T",
    "CD8+/CD45RA+ Naive Cytotoxic",
    "Dendritic",
)
