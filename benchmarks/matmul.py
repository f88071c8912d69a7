"""This machine's bf16 matmul throughput with torch (the peak the engines are held to).

Times ``torch.matmul`` of bf16 matrices on ``threads`` threads, for square sizes and for
the shapes of a Pythia-410m prefill (tokens x 1024 @ 1024 x 4096 and back). Each shape
runs ``repeats`` timed batches after a warm-up; the peak is the best shape's median.

Run: ``.venv/bin/python -m benchmarks.matmul --spec SPEC`` (a child of the peers suite);
the last line printed is JSON.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.paths.child import emit, read_spec

SHAPES = (
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (4096, 4096, 4096),
    (2048, 1024, 4096),  # prefill: tokens x hidden @ hidden x intermediate
    (2048, 4096, 1024),  # and back
    (2048, 1024, 3072),  # QKV
)


def time_shape(m: int, k: int, n: int, repeats: int, min_s: float) -> dict:
    import torch

    a = torch.randn(m, k, dtype=torch.bfloat16)
    b = torch.randn(k, n, dtype=torch.bfloat16)
    torch.matmul(a, b)
    flops = 2 * m * k * n
    per_call = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_s:
                break
        per_call.append(elapsed / calls)
    median = statistics.median(per_call)
    return {
        "shape": [m, k, n],
        "median_s_per_call": round(median, 6),
        "tflops": round(flops / median / 1e12, 3),
        "tflops_runs": [round(flops / t / 1e12, 3) for t in per_call],
    }


def measure(threads: int, repeats: int, min_s: float) -> dict:
    import torch

    torch.set_num_threads(threads)
    shapes = [time_shape(*s, repeats=repeats, min_s=min_s) for s in SHAPES]
    best = max(shapes, key=lambda s: s["tflops"])
    return {
        "dtype": "bfloat16",
        "threads": threads,
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "shapes": shapes,
        "peak_tflops": best["tflops"],
        "peak_shape": best["shape"],
    }


def main() -> None:
    spec = read_spec(__doc__.splitlines()[0])
    emit(measure(spec.get("threads", 2), spec.get("repeats", 5), spec.get("min_s", 0.5)))


if __name__ == "__main__":
    main()
