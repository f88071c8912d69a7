"""Path (d): our bulk job, in process.

Cell type prediction runs ``AnnotationJob`` (what ``c2s annotate`` runs in local mode) on
an ``.h5ad`` of the run's cells: input checks, chunked reading and ranking, prompt
building, our vLLM adapter, decoding, Parquet shard commits, then ``annotated.h5ad``, the
report and its plots. The job answers with each task's own sampling; here its stages are
wrapped (`FixedSampling`) so that it generates exactly the workload's tokens, as every
other path does. Its prompt tokens are checked equal to the workload's.

The bulk job annotates (prediction tasks only), so generation runs the same stages through
`serving.core.pipeline.fan_out` with plain generation, which is what the job's runner runs.

With ``start_only`` it starts the engine, warms up and exits (warm start); with
``ready_file`` it writes that file after the warm-up and waits for a profiler to attach,
then, after the timed runs, for it to detach (`wait_for_profiler_to_detach`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.paths.child import emit, read_spec, read_workloads, run_stats, since_launch

#: cells per build/decode chunk: the bulk job's default ``request_cells``
CHUNK_CELLS = 32


class FixedSampling:
    """`serving.core.pipeline.Pipeline` whose every generation uses one set of params."""

    def __init__(self, stages, params) -> None:
        self._stages = stages
        self._params = params

    def __getattr__(self, name: str):
        return getattr(self._stages, name)

    async def complete(self, prompt, params):
        return await self._stages.complete(prompt, self._params)

    async def complete_many(self, requests):
        return await self._stages.complete_many([(p, self._params) for p, _ in requests])

    def stream(self, prompt, params):
        return self._stages.stream(prompt, self._params)


async def annotate(stages, engine_config, params, path: str, out: Path) -> dict:
    """One ``AnnotationJob`` over ``path``; its timings and token counts."""
    from serving.bulk import AnnotateConfig, AnnotationJob, ExecutionConfig, PipelineRunner

    config = AnnotateConfig(
        input=Path(path),
        out=out,
        use_raw=True,
        overwrite=True,
        execution=ExecutionConfig(mode="local", engine=engine_config),
    )
    runner = PipelineRunner(FixedSampling(stages, params), request_cells=CHUNK_CELLS)
    start = time.perf_counter()
    result = await AnnotationJob(config, runner).run()
    return {
        "end_to_end_s": time.perf_counter() - start,
        "pipeline_s": result.report["run"]["elapsed_s"],
        "prompt_tokens": result.report["tokens"]["prompt"],
        "output_tokens": result.report["tokens"]["output"],
    }


async def wait_for_profiler_to_detach(ready_file: Path, limit_s: float = 300) -> None:
    """Say the timed runs are over (``<ready>.done``) and wait for ``<ready>.detached``.

    A profiler attached with ``--subprocesses`` can hold vLLM's engine core stopped while
    it is being shut down, so the profiler leaves first.
    """
    ready_file.with_suffix(".done").write_text("done")
    detached = ready_file.with_suffix(".detached")
    deadline = time.monotonic() + limit_s
    while not detached.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def measure(spec: dict) -> dict:
    from serving.core.pipeline import LocalPipeline, fan_out, generation
    from serving.core.requests import PromptRequest
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import EngineConfig, GenerationParams, start_vllm_engine

    # the engine `c2s annotate` starts, at the spec's thread setting
    config = EngineConfig.for_offline_job(spec["checkpoint"], cpu_cores=spec["cpu_cores"])
    start = time.perf_counter()
    engine = await start_vllm_engine(config)
    result = {
        "path": "bulk_job",
        "cpu_cores": spec["cpu_cores"],
        "engine_start_s": round(time.perf_counter() - start, 3),
        "launch_to_ready_s": since_launch(),
        "workloads": {},
    }
    if spec.get("start_only"):
        engine.shutdown()
        return result
    checkpoint = spec["checkpoint"]
    stages = LocalPipeline(
        BuildStage.from_model(checkpoint, max_model_len=engine.limits.max_model_len),
        engine,
        DecodeStage.from_model(checkpoint),
    )
    workloads = read_workloads(spec)
    out_dir = Path(spec["workload_file"]).with_suffix("") / f"bulk-{spec['cpu_cores']}"
    for name in spec["workloads"]:
        workload = workloads[name]
        params = GenerationParams(**workload["params"])
        as_job = workload["task"] == "cell_type_prediction"

        async def answer(items, path, params=params, workload=workload, as_job=as_job):
            """Seconds, and the prompt and output tokens the path reports."""
            if as_job:
                done = await annotate(stages, config, params, path, out_dir / Path(path).stem)
                return done["pipeline_s"], done
            jobs = [PromptRequest(task=workload["task"], inputs=i["inputs"]) for i in items]
            begin = time.perf_counter()
            answer = generation(stages, lambda _: params)
            answered = await fan_out(stages, jobs, answer, chunk_size=CHUNK_CELLS)
            seconds = time.perf_counter() - begin
            return seconds, {
                "prompt_tokens": sum(a.prompt.prompt_tokens for a in answered),
                "output_tokens": sum(len(a.completion.outputs[0].token_ids) for a in answered),
            }

        await answer(workload["warmup"], workload["warmup_file"])
        if spec.get("ready_file"):  # a profiler attaches now, after start-up and warm-up
            Path(spec["ready_file"]).write_text("ready")
            await asyncio.sleep(spec.get("attach_wait_s", 3))
        runs, differing = [], 0
        for items, path in zip(workload["runs"], workload["run_files"], strict=True):
            seconds, done = await answer(items, path)
            expected = sum(len(i["prompt_ids"]) for i in items)
            differing += done["prompt_tokens"] != expected
            stats = run_stats(len(items), seconds, expected, done["output_tokens"])
            if "end_to_end_s" in done:
                stats["end_to_end_s"] = round(done["end_to_end_s"], 4)
                stats["end_to_end_cells_per_s"] = round(len(items) / done["end_to_end_s"], 4)
            runs.append(stats)
        if spec.get("ready_file"):
            await wait_for_profiler_to_detach(Path(spec["ready_file"]))
        result["workloads"][name] = {
            "runs": runs,
            "repeat_unit": "one run of cells",
            "runs_with_other_prompt_tokens": differing,
            "how": "AnnotationJob (c2s annotate in-process), time to the last shard"
            if as_job
            else "fan_out over LocalPipeline (the bulk job's runner), no job around it",
        }
    engine.shutdown()
    return result


def main() -> None:
    emit(asyncio.run(measure(read_spec(__doc__.splitlines()[0]))))


if __name__ == "__main__":
    main()
