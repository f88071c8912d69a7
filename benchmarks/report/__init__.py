"""``BENCHMARKS.md`` from the suites' JSON files only, with a PNG per suite.

`write_report` reads ``<results_dir>/*.json``, evaluates the goals (`benchmarks.goals`),
draws the plots (`benchmarks.plots`) and writes the Markdown. The values of each section
come from `sections`, `suites` and `explanations`; its prose is a Jinja template under
``templates/``. Nothing here measures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2

from benchmarks.goals import evaluate
from benchmarks.plots import write_plots
from benchmarks.report import format as formats
from benchmarks.report import sections, suites
from benchmarks.report.explanations import missed_goals
from benchmarks.report.overhead import overhead_context

#: the suites this report knows, in report order (others' files are shown when present)
SUITES = (
    "peers",
    "serving_overhead",
    "loadtest",
    "long_prompts",
    "profile",
    "label_scoring",
    "tokenizer",
    "bulk",
    "atlas_scaling",
    "distributed",
)


def _defined(filter_):
    """A filter that treats a missing value (Jinja's Undefined) as ``None``."""

    def apply(value, *args):
        return filter_(None if isinstance(value, jinja2.Undefined) else value, *args)

    return apply


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("benchmarks.report", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters.update(
        fmt=_defined(formats.fmt),
        pct=_defined(formats.pct),
        status=_defined(formats.status),
        share=lambda x, digits=0: f"{100 * x:.{digits}f}",
        gflop=lambda x: f"{x / 1e9:,.1f}",
    )
    env.globals["table"] = formats.table
    return env


ENVIRONMENT = _environment()


def fill(name: str, context: dict) -> str:
    """Template ``templates/<name>.md.j2`` filled with ``context``."""
    return ENVIRONMENT.get_template(f"{name}.md.j2").render(**context)


def sentence(name: str, context: dict) -> str:
    """A one-line template, filled: a sentence of an explanation."""
    return fill(name, context).strip()


def load_results(results_dir: Path) -> dict[str, dict]:
    results = {}
    for suite in SUITES:
        path = results_dir / f"{suite}.json"
        if path.is_file():
            results[suite] = json.loads(path.read_text())
    return results


def _suite_sections(results: dict[str, dict]) -> list[str]:
    peak = (results.get("peers", {}).get("matmul") or {}).get("peak_tflops")
    build = {
        "peers": lambda d: sections.peers_context(d),
        "loadtest": suites.loadtest_context,
        "long_prompts": lambda d: suites.long_prompts_context(d, peak),
        "profile": suites.profile_context,
        "label_scoring": suites.label_scoring_context,
        "tokenizer": suites.tokenizer_context,
        "bulk": suites.bulk_context,
        "atlas_scaling": suites.atlas_scaling_context,
        "distributed": suites.distributed_context,
        "serving_overhead": overhead_context,
    }
    out = [fill(name, build[name](results[name])) for name in SUITES if name in results]
    out += [
        fill("other", suites.other_context(n, d)) for n, d in results.items() if n not in SUITES
    ]
    return out


def render(
    results: dict[str, dict], plots: dict[str, Path], md_dir: Path, results_dir: Path
) -> str:
    parts = []
    if results:
        goals = evaluate(results)
        parts.append(fill("goals", sections.goals_context(goals, results)))
        missed = missed_goals(goals, results, sentence)
        if missed:
            parts.append(fill("explanations", {"missed": missed}))
        parts.append(fill("machine", sections.machine_context(results)))
        parts += _suite_sections(results)
        shown = [(suite, os.path.relpath(path, md_dir)) for suite, path in plots.items()]
        parts.append(fill("plots", {"plots": shown}))
        parts.append(fill("reproduce", suites.commands_context(results)))
    text = fill("report", {"results_rel": os.path.relpath(results_dir, md_dir), "sections": parts})
    return text.rstrip() + "\n"


def write_report(results_dir: Path, out: Path, *, plots: bool = True) -> list[Path]:
    """Write ``out`` from ``results_dir``'s JSON; returns the plots written."""
    results = load_results(results_dir)
    written = write_plots(results, results_dir) if plots else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, written, out.parent, results_dir))
    return list(written.values())
