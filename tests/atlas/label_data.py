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


async def answer_with_label_set(stages, jobs, params_for, *, label_set, registry, chunk_size):
    """`fan_out` of ``jobs`` with the label set's answer, as the gateway runs it."""
    from serving.core.label_sets import label_set_answer
    from serving.core.pipeline import fan_out

    answer = await label_set_answer(
        stages, jobs, params_for, label_set=label_set, registry=registry
    )
    return await fan_out(stages, jobs, answer, chunk_size=chunk_size)
