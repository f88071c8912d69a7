"""Cell and gene counts the C2S checkpoint was trained on (its model card).

Prompts outside these ranges still run, but the model never saw them; the serving core
checks requests against them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainedRanges:
    """Inclusive ranges of a checkpoint's training prompts.

    Attributes
    ----------
    single_cell_genes : tuple of int
        Genes of a single-cell prompt.
    multi_cell_cells : tuple of int
        Cells of a multi-cell prompt.
    multi_cell_genes : tuple of int
        Genes per cell of a multi-cell prompt.
    """

    single_cell_genes: tuple[int, int] = (100, 2048)
    multi_cell_cells: tuple[int, int] = (5, 20)
    multi_cell_genes: tuple[int, int] = (100, 400)

    def gene_range(self, multi_cell: bool) -> tuple[int, int]:
        """Allowed genes per cell for a single- or multi-cell prompt."""
        return self.multi_cell_genes if multi_cell else self.single_cell_genes


C2S_TRAINED_RANGES = TrainedRanges()
