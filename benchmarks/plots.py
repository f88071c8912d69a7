"""One PNG per suite, drawn from the suites' JSON only (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.peers import PATHS

SHORT = {
    "a_c2s_one_at_a_time": "(a) C2S",
    "b_hf_batched": "(b) HF batch",
    "c_vllm_offline_server": "(c) vLLM srv",
    "c_vllm_offline_all": "(c) vLLM all",
    "d_bulk_server": "(d) bulk srv",
    "d_bulk_all": "(d) bulk all",
    "e_gateway_server": "(e) gw srv",
    "e_gateway_all": "(e) gw all",
}


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_peers(peers: dict, out: Path) -> Path | None:
    panels = [
        (ckpt, name, workload)
        for ckpt, data in peers.get("checkpoints", {}).items()
        for name, workload in data["workloads"].items()
    ]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (ckpt, name, workload) in zip(axes[0], panels, strict=True):
        keys = [k for k in PATHS if k in workload["paths"]]
        rates = [workload["paths"][k]["cells_per_s"] or 0 for k in keys]
        colors = ["#999999" if k[0] in "ab" else "#1f77b4" if k[0] == "c" else "#2ca02c"
                  for k in keys]  # fmt: skip
        ax.bar(range(len(keys)), rates, color=colors)
        ax.set_xticks(range(len(keys)), [SHORT[k] for k in keys], rotation=60, ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{ckpt}\n{name}", fontsize=9)
        ax.set_ylabel("cells/s (median)")
    return _save(fig, out)


def plot_loadtest(loadtest: dict, out: Path) -> Path | None:
    tasks = loadtest.get("task_requests")
    if not tasks:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sweep = [s for s in tasks["closed_loop"] if s["e2e_ms"]]
    left.plot(
        [s["requests_per_s"] for s in sweep], [s["e2e_ms"]["p50"] for s in sweep], "o-", label="p50"
    )
    left.plot(
        [s["requests_per_s"] for s in sweep],
        [s["e2e_ms"]["p99"] for s in sweep],
        "s--",
        label="p99",
    )
    for s in sweep:
        left.annotate(
            f"c={s['concurrency']}", (s["requests_per_s"], s["e2e_ms"]["p50"]), fontsize=7
        )
    if tasks.get("knee"):
        knee = tasks["knee"]
        left.axvline(knee["requests_per_s"], color="red", alpha=0.4, label="knee")
    left.set_xlabel("throughput (requests/s)")
    left.set_ylabel("E2E latency (ms)")
    left.set_title("closed loop: throughput vs latency", fontsize=9)
    left.legend(fontsize=7)
    poisson = [p for p in tasks["open_loop"] if p["ttft_ms"]]
    right.plot(
        [p["rate"] for p in poisson], [p["ttft_ms"]["p50"] for p in poisson], "o-", label="TTFT p50"
    )
    right.plot(
        [p["rate"] for p in poisson],
        [p["ttft_ms"]["p99"] for p in poisson],
        "s--",
        label="TTFT p99",
    )
    idle = (tasks["idle"].get("ttft_ms") or {}).get("p50")
    if idle:
        right.axhline(2 * idle, color="red", alpha=0.4, label="2 x idle TTFT")
    right.set_xlabel("offered rate (requests/s, Poisson)")
    right.set_ylabel("TTFT (ms)")
    right.set_yscale("log")
    right.set_title("open loop: TTFT vs offered load", fontsize=9)
    right.legend(fontsize=7)
    return _save(fig, out)


def plot_long_prompts(long_prompts: dict, out: Path) -> Path | None:
    shapes = {k: v for k, v in long_prompts.get("shapes", {}).items() if "e2e_s_median" in v}
    if not shapes:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(shapes)
    ax.bar(
        [i - 0.2 for i in range(len(names))],
        [shapes[n]["ttft_s_median"] for n in names],
        0.4,
        label="TTFT",
    )
    ax.bar(
        [i + 0.2 for i in range(len(names))],
        [shapes[n]["e2e_s_median"] for n in names],
        0.4,
        label="E2E",
    )
    ax.set_xticks(range(len(names)), [f"{n} cells x genes" for n in names])
    ax.set_ylabel("seconds (median, one request alone)")
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_profile(profile: dict, out: Path) -> Path | None:
    rows = []
    for workload, data in profile.get("profiles", {}).items():
        for role, shares in data.get("roles", {}).items():
            rows.append((f"{workload}\n{role}", shares["categories"], shares["share_of_samples"]))
    if not rows:
        return None
    plt = _pyplot()
    categories = sorted({c for _, cats, _ in rows for c in cats})
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 2))
    left = [0.0] * len(rows)
    cmap = plt.get_cmap("tab20")
    for i, category in enumerate(categories):
        widths = [cats.get(category, 0) * share for _, cats, share in rows]
        ax.barh(range(len(rows)), widths, left=left, label=category, color=cmap(i % 20))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.set_xlabel("share of busy samples (py-spy)")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    return _save(fig, out)


def plot_tokenizer(tokenizer: dict, out: Path) -> Path | None:
    throughput = tokenizer.get("throughput")
    if not throughput:
        return None
    rows = [
        (k, v["cells_per_s"])
        for k, v in throughput.items()
        if isinstance(v, dict) and "cells_per_s" in v
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([r[0] for r in rows], [r[1] for r in rows])
    ax.set_xscale("log")
    ax.set_xlabel("cells/s (prompt ids, one core)")
    return _save(fig, out)


def plot_label_scoring(scoring: dict, out: Path) -> Path | None:
    settings = scoring.get("settings") or []
    if not settings:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [
        f"block {s['block_size']}" + ("" if s["prefix_caching"] else "\nno prefix cache")
        for s in settings
    ]
    width = 0.25
    for i, key in enumerate(("scored_k10", "scored_k50")):
        values = [s.get(key, {}).get("ratio_to_greedy") or 0 for s in settings]
        ax.bar([x + i * width for x in range(len(settings))], values, width, label=key)
    ax.axhline(
        scoring.get("summary", {}).get("goal_k10_at_most", 1.5),
        color="k",
        ls="--",
        lw=0.8,
        label="goal for K = 10",
    )
    ax.set_xticks([x + width / 2 for x in range(len(settings))], names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency / one greedy prediction")
    ax.legend(fontsize=7)
    return _save(fig, out)


PLOTTERS = {
    "peers": plot_peers,
    "loadtest": plot_loadtest,
    "long_prompts": plot_long_prompts,
    "profile": plot_profile,
    "tokenizer": plot_tokenizer,
    "label_scoring": plot_label_scoring,
}


def write_plots(results: dict[str, dict], results_dir: Path) -> dict[str, Path]:
    """A PNG per suite present, beside its JSON; returns suite -> path."""
    written = {}
    for suite, plot in PLOTTERS.items():
        if suite in results:
            path = plot(results[suite], results_dir / f"{suite}.png")
            if path is not None:
                written[suite] = path
    return written
