"""``report.json``: what a run did, on what, how fast, and how well."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.bulk.accuracy import LabelScores
from serving.bulk.config import AnnotateConfig
from serving.bulk.input_file import InputFile
from serving.bulk.stats import RunStats

#: predictions listed by count in the report
TOP_PREDICTIONS = 50


def build_report(
    config: AnnotateConfig,
    source: InputFile,
    rows: pa.Table,
    stats: RunStats,
    scores: LabelScores | None,
    files: dict[str, str],
) -> dict[str, Any]:
    """The report of a finished run (JSON-ready)."""
    predictions = rows.column("prediction").to_pylist()
    statuses = Counter(rows.column("status").to_pylist())
    report: dict[str, Any] = {
        "task": config.task,
        "models": sorted({m for m in rows.column("model").to_pylist() if m}),
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
        "cells": {"total": rows.num_rows, "by_status": dict(statuses)},
        "run": stats.to_dict(),
        "tokens": token_totals(rows),
        "predictions": {
            "distinct": len({p for p in predictions if p}),
            "counts": dict(Counter(p for p in predictions if p).most_common(TOP_PREDICTIONS)),
        },
        "accuracy": scores.to_dict() if scores is not None else None,
        "files": files,
    }
    if config.multi_cell:
        report["groups"] = group_summary(rows, stats, config.min_group_cells)
    if config.labels:
        report["label_set"] = label_set_summary(config, rows)
    return report


def label_set_summary(config: AnnotateConfig, rows: pa.Table) -> dict[str, Any]:
    """The label set used, how many answers fell in it, and (scored) the mean top score."""
    member = [m for m in rows.column("in_label_set").to_pylist() if m is not None]
    scores = [s for s in rows.column("label_score").to_pylist() if s is not None]
    return {
        "mode": config.label_mode,
        "n_labels": len(config.labels or ()),
        "top_k": config.top_k_labels if config.label_mode == "scored" else None,
        "in_set_rate": float(np.mean(member)) if member else None,
        "mean_top_probability": float(np.mean(scores)) if scores else None,
    }


def _requests(rows: pa.Table) -> pa.Table:
    """One row per request: cells of a group share theirs."""
    answered = rows.filter(pc.not_equal(rows.column("status"), "empty_cell"))
    if answered.num_rows == 0 or answered.column("group_id").null_count == answered.num_rows:
        return answered
    groups = answered.column("group_id").to_pylist()
    first = sorted({g: i for i, g in reversed(list(enumerate(groups)))}.values())
    return answered.take(first)


def token_totals(rows: pa.Table) -> dict[str, Any]:
    """Prompt and output tokens of the requests, and answers cut by ``max_tokens``."""
    requests = _requests(rows)
    prompt = np.asarray(requests.column("prompt_tokens").to_pylist(), dtype=np.int64)
    output = np.asarray(requests.column("output_tokens").to_pylist(), dtype=np.int64)
    reasons = Counter(requests.column("finish_reason").to_pylist())
    return {
        "requests": requests.num_rows,
        "prompt": int(prompt.sum()),
        "output": int(output.sum()),
        "mean_prompt": float(prompt.mean()) if len(prompt) else 0.0,
        "max_prompt": int(prompt.max()) if len(prompt) else 0,
        "cut_by_max_tokens": int(reasons.get("length", 0)),
    }


def group_summary(rows: pa.Table, stats: RunStats, trained_min: int) -> dict[str, Any]:
    """Sizes of the groups asked and the tissues answered."""
    requests = _requests(rows)
    sizes = np.asarray(requests.column("group_size").to_pylist(), dtype=np.int64)
    size = stats.group_size
    return {
        "groups": requests.num_rows,
        "max_size": size.cells if size else None,
        "size_fit_exactly": size.exact if size else None,
        "worst_prompt_tokens": size.worst_prompt_tokens if size else None,
        "sizes": {
            "min": int(sizes.min()) if len(sizes) else 0,
            "median": float(np.median(sizes)) if len(sizes) else 0.0,
            "max": int(sizes.max()) if len(sizes) else 0,
        },
        "below_trained_minimum": int(np.sum(sizes < trained_min)),
        "tissues": dict(Counter(t for t in requests.column("tissue").to_pylist() if t)),
    }
