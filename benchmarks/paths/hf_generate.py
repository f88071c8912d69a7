"""Paths (a) and (b): Hugging Face ``generate`` in bf16 with ``use_cache=True``.

(a) ``one_at_a_time`` is C2S's ``predict_cell_types_of_data``: one prompt per call. Each
cell is one timed repeat. (b) ``batched`` left-pads prompts into batches; it sweeps the
batch sizes on the first run, then repeats the best size on the other runs.

Both take the same token ids as every other path and generate exactly the workload's
number of tokens (``min_new_tokens`` = ``max_new_tokens``).
"""

from __future__ import annotations

import time

from benchmarks.paths.child import emit, read_spec, read_workloads, since_launch, timed_runs

PAD_ID = 0


def generate_kwargs(params: dict) -> dict:
    kwargs = {
        "max_new_tokens": params["max_tokens"],
        "min_new_tokens": params["min_tokens"],
        "use_cache": True,
        "pad_token_id": PAD_ID,
    }
    if params["temperature"] > 0:
        kwargs.update(
            do_sample=True,
            temperature=params["temperature"],
            top_p=params["top_p"],
            top_k=params["top_k"] or 0,
        )
    else:
        kwargs["do_sample"] = False
    return kwargs


def left_padded(prompts: list[list[int]]):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def answer_batches(model, items: list[dict], batch_size: int, kwargs: dict) -> list[int]:
    import torch

    counts = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            prompts = [i["prompt_ids"] for i in items[start : start + batch_size]]
            ids, mask = left_padded(prompts)
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            counts += [out.shape[1] - ids.shape[1]] * len(prompts)
    return counts


def measure_workload(model, spec: dict, name: str, workload: dict) -> dict:
    kwargs = generate_kwargs(workload["params"])

    def answer(items: list[dict], batch_size: int) -> list[int]:
        return answer_batches(model, items, batch_size, kwargs)

    answer_batches(model, workload["warmup"][:1], 1, {**kwargs, "max_new_tokens": 2})
    runs = workload["runs"]
    if spec["mode"] == "one_at_a_time":
        cells = runs[0][: spec["one_at_a_time_cells"][name]]
        timed = timed_runs([[c] for c in cells], lambda items: answer(items, 1))
        return {"runs": timed, "repeat_unit": "one cell"}
    sweep = {}
    for size in spec["batch_sizes"][name]:
        sweep[size] = timed_runs([runs[0]], lambda items, size=size: answer(items, size))[0]
    best = max(sweep, key=lambda s: sweep[s]["cells_per_s"])
    again = timed_runs(runs[1:], lambda items: answer(items, best))
    return {
        "runs": [sweep[best], *again],
        "repeat_unit": "one run of cells",
        "batch_size": best,
        "sweep": {str(s): r for s, r in sweep.items()},
    }


def main() -> None:
    spec = read_spec(__doc__.splitlines()[0])
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(spec["checkpoint"], dtype=torch.bfloat16)
    model.eval()
    load_s = time.perf_counter() - start
    workloads = read_workloads(spec)
    result = {
        "path": f"hf_{spec['mode']}",
        "threads": spec["threads"],
        "load_s": round(load_s, 3),
        "launch_to_ready_s": since_launch(),
        "workloads": {},
    }
    for name in spec["workloads"]:
        result["workloads"][name] = measure_workload(model, spec, name, workloads[name])
    emit(result)


if __name__ == "__main__":
    main()
