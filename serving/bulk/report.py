"""``report.json``: what a run did, on what, how fast, and how well."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.bulk.accuracy import LabelScores
from serving.bulk.config import AnnotateConfig
from serving.bulk.input_file import InputFile
from serving.bulk.row_tally import RowTally
from serving.bulk.stats import RunStats

#: predictions listed by count in the report
TOP_PREDICTIONS = 50


def build_report(
    config: AnnotateConfig,
    source: InputFile,
    tally: RowTally,
    stats: RunStats,
    scores: LabelScores | None,
    files: dict[str, str],
) -> dict[str, Any]:
    """The report of a finished run (JSON-ready), from its rows' `RowTally`."""
    report: dict[str, Any] = {
        "task": config.task,
        "models": sorted(tally.models),
        "execution": {"mode": config.execution.mode, "target": config.execution.target},
        "input": {"path": str(config.input), "matrix": config.matrix_name, **source.summary()},
        "settings": {
            "n_genes": config.genes_per_cell,
            "template_index": config.template_index,
            "tie_break": config.tie_break,
            "label_key": config.label_key,
            "group_key": config.group_key,
            "shard_cells": config.shard_cells,
        },
        "cells": {"total": tally.next_row, "by_status": dict(tally.statuses)},
        "run": stats.to_dict(),
        "tokens": tally.token_totals(),
        "predictions": {
            "distinct": len(tally.predictions),
            "counts": dict(tally.predictions.most_common(TOP_PREDICTIONS)),
        },
        "accuracy": scores.to_dict() if scores is not None else None,
        "files": files,
    }
    if config.multi_cell:
        report["groups"] = group_summary(tally, stats, config.min_group_cells)
    if config.labels:
        report["label_set"] = label_set_summary(config, tally)
    return report


def label_set_summary(config: AnnotateConfig, tally: RowTally) -> dict[str, Any]:
    """The label set used, how many answers fell in it, and (scored) the mean top score."""
    member, scores = tally.label_set_values()
    return {
        "mode": config.label_mode,
        "n_labels": len(config.labels or ()),
        "top_k": config.top_k_labels if config.label_mode == "scored" else None,
        "in_set_rate": float(np.mean(member)) if len(member) else None,
        "mean_top_probability": float(np.mean(scores)) if len(scores) else None,
    }


def group_summary(tally: RowTally, stats: RunStats, trained_min: int) -> dict[str, Any]:
    """Sizes of the groups asked and the tissues answered."""
    sizes = tally.group_size_array()
    size = stats.group_size
    return {
        "groups": tally.requests,
        "max_size": size.cells if size else None,
        "size_fit_exactly": size.exact if size else None,
        "worst_prompt_tokens": size.worst_prompt_tokens if size else None,
        "sizes": {
            "min": int(sizes.min()) if len(sizes) else 0,
            "median": float(np.median(sizes)) if len(sizes) else 0.0,
            "max": int(sizes.max()) if len(sizes) else 0,
        },
        "below_trained_minimum": int(np.sum(sizes < trained_min)),
        "tissues": dict(tally.tissues),
    }
