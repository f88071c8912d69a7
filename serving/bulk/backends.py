"""The execution modes: `open_runner` gives the `TaskRunner` of an `ExecutionConfig`:

- ``local``: start the vLLM engine and wire the plain stages to it (`LocalPipeline`);
- ``ray``: connect to a Ray cluster and call the Serve application's deployments
  (`RayPipeline` over ``serve.get_deployment_handle``);
- ``endpoint``: a remote gateway over HTTP (`GatewayRunner`).

``distributed`` opens the run's engines on a Ray cluster instead
(`serving.bulk.distributed`; `serving.bulk.job.annotate` picks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from serving.bulk.answer import PipelineRunner
from serving.bulk.config import ExecutionConfig
from serving.bulk.errors import AnnotateError
from serving.bulk.remote import GatewayRunner
from serving.bulk.runners import TaskRunner

#: deployment names given by `serving.ray_serve.deployments.build_app`
ENGINE, PROMPT_BUILDER, DECODER = "Engine", "PromptBuilder", "Decoder"


@asynccontextmanager
async def open_runner(execution: ExecutionConfig) -> AsyncIterator[TaskRunner]:
    """The runner for ``execution``, closed (engine shut down) on exit."""
    if execution.mode == "local":
        async with _local(execution) as runner:
            yield runner
    elif execution.mode == "ray":
        yield _ray(execution)
    else:
        api_key = execution.api_key.get_secret_value() if execution.api_key else None
        runner = GatewayRunner.connect(
            execution.endpoint or "",
            api_key,
            request_cells=execution.request_cells,
            timeout_s=execution.request_timeout_s,
        )
        try:
            yield runner
        finally:
            await runner.aclose()


@asynccontextmanager
async def _local(execution: ExecutionConfig) -> AsyncIterator[TaskRunner]:
    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.engine import start_vllm_engine
    from serving.engine.checkpoint import local_model_dir

    engine_config = execution.engine
    assert engine_config is not None  # ExecutionConfig checks it
    model_dir = execution.model_dir or Path(local_model_dir(engine_config.tokenizer_path))
    engine = await start_vllm_engine(engine_config)
    try:
        stages = LocalPipeline(
            BuildStage.from_model(model_dir, max_model_len=engine.limits.max_model_len),
            engine,
            DecodeStage.from_model(model_dir),
        )
        yield PipelineRunner(stages, request_cells=execution.request_cells)
    finally:
        engine.shutdown()


def _ray(execution: ExecutionConfig) -> TaskRunner:
    import ray

    address = execution.ray_address or "auto"
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:
            raise AnnotateError(
                f"No Ray cluster at {address!r} ({exc}). Start the application with "
                "`c2s serve`, or leave out --ray-address to run in this process."
            ) from None
    return PipelineRunner(serve_stages(execution), request_cells=execution.request_cells)


def serve_stages(execution: ExecutionConfig):
    """`RayPipeline` over the Serve application's deployments (Ray already initialised)."""
    from ray import serve

    from serving.ray_serve.deployments import RayPipeline

    address = execution.ray_address or "auto"

    def handle(name: str):
        try:
            return serve.get_deployment_handle(name, app_name=execution.ray_app)
        except Exception as exc:  # Ray raises several types for a missing app
            raise AnnotateError(
                f"The Ray cluster at {address!r} has no deployment {name!r} in a Serve "
                f"application {execution.ray_app!r} ({exc}); check --ray-app."
            ) from None

    return RayPipeline(handle(ENGINE), handle(PROMPT_BUILDER), handle(DECODER))
