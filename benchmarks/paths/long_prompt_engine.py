"""Long multi-cell prompts on our engine adapter: latency one at a time, then throughput.

For each prompt shape: each ``sequential`` prompt alone, streamed (TTFT, E2E); then the
``concurrent`` prompts all at once (prompts/s, prompt tokens/s). Greedy, exactly the
spec's output tokens.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.paths.child import emit, read_spec, since_launch
from benchmarks.stats import median


async def streamed(engine, ids: list[int], params) -> dict:
    start = time.perf_counter()
    ttft, tokens = None, 0
    async for step in engine.generate(ids, params):
        got = sum(len(d.token_ids) for d in step.deltas)
        if got and ttft is None:
            ttft = time.perf_counter() - start
        tokens += got
    return {
        "prompt_tokens": len(ids),
        "output_tokens": tokens,
        "ttft_s": round(ttft, 3),
        "e2e_s": round(time.perf_counter() - start, 3),
    }


async def measure(spec: dict) -> dict:
    from serving.engine import EngineConfig, GenerationParams, start_vllm_engine

    config = EngineConfig(model=spec["checkpoint"], cpu_cores=spec["cpu_cores"])
    start = time.perf_counter()
    engine = await start_vllm_engine(config)
    result = {
        "path": "engine_adapter",
        "cpu_cores": spec["cpu_cores"],
        "engine_start_s": round(time.perf_counter() - start, 3),
        "launch_to_ready_s": since_launch(),
        "shapes": {},
    }
    params = GenerationParams(**spec["params"])
    for name, prompts in spec["prompts"].items():
        sequential = [await streamed(engine, ids, params) for ids in prompts["sequential"]]
        start = time.perf_counter()
        done = await asyncio.gather(
            *(engine.complete(ids, params) for ids in prompts["concurrent"])
        )
        seconds = time.perf_counter() - start
        prompt_tokens = sum(len(ids) for ids in prompts["concurrent"])
        result["shapes"][name] = {
            "sequential": sequential,
            "ttft_s_median": median([s["ttft_s"] for s in sequential]),
            "e2e_s_median": median([s["e2e_s"] for s in sequential]),
            "concurrent": {
                "prompts": len(prompts["concurrent"]),
                "seconds": round(seconds, 3),
                "prompts_per_s": round(len(done) / seconds, 4),
                "prompt_tokens_per_s": round(prompt_tokens / seconds, 1),
                "output_tokens": sum(c.completion_tokens for c in done),
            },
        }
    engine.shutdown()
    return result


def main() -> None:
    emit(asyncio.run(measure(read_spec(__doc__.splitlines()[0]))))


if __name__ == "__main__":
    main()
