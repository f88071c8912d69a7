"""How numbers, latencies and tables look in ``BENCHMARKS.md`` (the templates' filters)."""

from __future__ import annotations


def fmt(value, digits: int = 2) -> str:
    """A number for a table cell; ``—`` for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.2g}"
        return f"{value:,.{digits}f}"
    return str(value)


def pct(share: float | None, digits: int = 1) -> str:
    """A share (0-1) as a percentage; ``—`` for missing."""
    return "—" if share is None else fmt(100 * share, digits)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; the template's own line break after it ends the last row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latency(summary: dict | None) -> str:
    """``p50 / p99`` in whole milliseconds."""
    if not summary:
        return "—"
    return f"{fmt(summary.get('p50'), 0)} / {fmt(summary.get('p99'), 0)}"


def status(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


def loads(values: list[float] | None) -> str:
    """Load averages as ``1 / 5 / 15``."""
    return " / ".join(f"{x:.1f}" for x in values or [])


def ratio_of(paths: dict, numerator: str, denominator: str) -> float | None:
    a = paths.get(numerator, {}).get("cells_per_s")
    b = paths.get(denominator, {}).get("cells_per_s")
    return round(a / b, 2) if a and b else None
