"""Path (e): our gateway under load: every cell of a run in flight at once.

Each cell is one task request through the official ``openai`` SDK (``/v1/completions``
with the task's model name and ``inputs``), so the gateway builds the prompt, the engine
replica generates and the decoder parses, as for any client. The usage's prompt tokens
are checked equal to the workload's ids.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.load_client import complete_request, openai_client
from benchmarks.paths.child import emit, read_spec, read_workloads, run_stats

#: the gateway's base model name (`serving.ray_serve.config.GatewayConfig.model_name`)
BASE_MODEL = "c2s-demo-pythia"


def task_request(task: str, params: dict, inputs: dict) -> dict:
    """``completions.create`` arguments of one task request with fixed-length sampling."""
    extra = {"inputs": inputs, "min_tokens": params["min_tokens"], "ignore_eos": True}
    if params["top_k"]:
        extra["top_k"] = params["top_k"]
    return {
        "model": f"{BASE_MODEL}/{task}",
        "prompt": "",
        "max_tokens": params["max_tokens"],
        "temperature": params["temperature"],
        "top_p": params["top_p"],
        "extra_body": extra,
    }


async def measure(spec: dict) -> dict:
    client = openai_client(spec["url"])
    workloads = read_workloads(spec)
    result = {"path": "gateway_load", "url": spec["url"], "workloads": {}}
    for name in spec["workloads"]:
        workload = workloads[name]

        async def answer(items: list[dict], workload=workload) -> list:
            requests = [
                task_request(workload["task"], workload["params"], i["inputs"]) for i in items
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
