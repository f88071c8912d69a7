"""Path (c): raw vLLM offline, ``LLM.generate`` on the workload's token ids.

The engine gets the same arguments our adapter gives it (bf16, the checkpoint's 8192
context, eager, prefix caching, 256 sequences; chunked prefill as vLLM's default, on, as
in our bulk job) and the same CPU
thread binding (`serving.engine.vllm_engine.cpu_environment`), so only the layers above
the engine differ from path (d). With ``start_only`` it starts, warms up and exits: the
warm-start measurement.
"""

from __future__ import annotations

import os
import time

from benchmarks.paths.child import emit, read_spec, read_workloads, since_launch, timed_runs

WARMUP_PROMPT = [0] * 8  # the bf16 CPU build dies on a first prompt of 1-3 tokens


def sampling_params(params: dict):
    from vllm import SamplingParams

    return SamplingParams(
        temperature=params["temperature"],
        top_p=params["top_p"],
        top_k=params["top_k"] or 0,
        max_tokens=params["max_tokens"],
        min_tokens=params["min_tokens"],
        ignore_eos=params["ignore_eos"],
    )


def main() -> None:
    spec = read_spec(__doc__.splitlines()[0])
    from serving.engine import EngineConfig
    from serving.engine.checkpoint import read_checkpoint_facts, resolve_max_model_len
    from serving.engine.vllm_engine import cpu_environment

    config = EngineConfig(model=spec["checkpoint"], cpu_cores=spec["cpu_cores"])
    os.environ.update(cpu_environment(config))
    max_model_len = resolve_max_model_len(config, read_checkpoint_facts(config.model))
    start = time.perf_counter()
    from vllm import LLM
    from vllm.inputs import TokensPrompt

    import_s = time.perf_counter() - start
    llm = LLM(
        model=config.model,
        dtype=config.dtype,
        seed=config.seed,
        enforce_eager=config.enforce_eager,
        enable_prefix_caching=config.enable_prefix_caching,
        max_model_len=max_model_len,
        max_num_seqs=config.max_num_seqs,
        disable_log_stats=True,
    )
    llm.generate(
        [TokensPrompt(prompt_token_ids=WARMUP_PROMPT)],
        sampling_params(
            {
                "temperature": 0.0,
                "top_p": 1.0,
                "top_k": None,
                "max_tokens": 2,
                "min_tokens": 0,
                "ignore_eos": True,
            }
        ),
        use_tqdm=False,
    )
    result = {
        "path": "vllm_offline",
        "cpu_cores": spec["cpu_cores"],
        "environment": cpu_environment(config),
        "import_s": round(import_s, 3),
        "engine_start_s": round(time.perf_counter() - start, 3),
        "launch_to_ready_s": since_launch(),
        "workloads": {},
    }
    if spec.get("start_only"):
        emit(result)
        return
    workloads = read_workloads(spec)

    def answer(items: list[dict], params) -> list[int]:
        prompts = [TokensPrompt(prompt_token_ids=i["prompt_ids"]) for i in items]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return [len(o.outputs[0].token_ids) for o in outputs]

    for name in spec["workloads"]:
        workload = workloads[name]
        params = sampling_params(workload["params"])
        answer(workload["warmup"], params)
        runs = timed_runs(workload["runs"], lambda items, p=params: answer(items, p))
        result["workloads"][name] = {"runs": runs, "repeat_unit": "one run of cells"}
    emit(result)


if __name__ == "__main__":
    main()
