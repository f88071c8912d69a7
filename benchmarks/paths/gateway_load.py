"""Path (e): our gateway under load: every cell of a run in flight at once.

Each cell is one task request through the official ``openai`` SDK (``/v1/completions``
with the task's model name and ``inputs``), so the gateway builds the prompt, the engine
replica generates and the decoder parses, as for any client. The usage's prompt tokens
are checked equal to the workload's ids.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.load_client import complete_request, openai_client
from benchmarks.paths.child import emit, read_spec, read_workloads, run_stats
from serving.engine import EngineConfig


def served_model(checkpoint: str | Path) -> str:
    """The base model name `c2s serve` gives ``checkpoint`` (its directory's name)."""
    return EngineConfig(model=str(checkpoint)).public_name


def task_request(model: str, task: str, params: dict, inputs: dict) -> dict:
    """``completions.create`` arguments of one task request to base model ``model``, with
    fixed-length sampling."""
    extra = {"inputs": inputs, "min_tokens": params["min_tokens"], "ignore_eos": True}
    if params["top_k"]:
        extra["top_k"] = params["top_k"]
    return {
        "model": f"{model}/{task}",
        "prompt": "",
        "max_tokens": params["max_tokens"],
        "temperature": params["temperature"],
        "top_p": params["top_p"],
        "extra_body": extra,
    }


async def measure(spec: dict) -> dict:
    client = openai_client(spec["url"])
    workloads = read_workloads(spec)
    model = served_model(spec["checkpoint"])
    result = {"path": "gateway_load", "url": spec["url"], "workloads": {}}
    for name in spec["workloads"]:
        workload = workloads[name]

        async def answer(items: list[dict], workload=workload) -> list:
            requests = [
                task_request(model, workload["task"], workload["params"], i["inputs"])
                for i in items
            ]
            return await asyncio.gather(*(complete_request(client, r) for r in requests))

        await answer(workload["warmup"])
        runs, errors, mismatched = [], {}, 0
        for items in workload["runs"]:
            start = time.perf_counter()
            records = await answer(items)
            seconds = time.perf_counter() - start
            for record, item in zip(records, items, strict=True):
                if record.status != "ok":
                    errors[record.status] = errors.get(record.status, 0) + 1
                elif record.prompt_tokens != len(item["prompt_ids"]):
                    mismatched += 1
            prompt_tokens = sum(len(i["prompt_ids"]) for i in items)
            output_tokens = sum(r.output_tokens or 0 for r in records)
            runs.append(run_stats(len(items), seconds, prompt_tokens, output_tokens))
        if errors:  # a failed request is no answer: the path's rate would be a lie
            raise RuntimeError(f"{name}: requests to {model!r} failed, by status: {errors}")
        result["workloads"][name] = {
            "runs": runs,
            "repeat_unit": "one run of cells, all in flight",
            "errors_by_status": errors,
            "prompts_differing_from_workload": mismatched,
        }
    return result


def main() -> None:
    emit(asyncio.run(measure(read_spec(__doc__.splitlines()[0]))))


if __name__ == "__main__":
    main()
