"""The files a reviewer follows for one cell-type request, from the route to the engine and
back, counted on the calls the request really makes (docs/request-path.md lists them)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from serving.core.pipeline import LocalPipeline
from serving.core.stages import BuildStage, DecodeStage
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from serving.testing.fake_engine import FakeEngine
from tests.layers.call_paths import CallPaths, Frame

ROUTE = ("serving/gateway/app.py", "_router.<locals>.completions")
#: in order of first reach; over Ray Serve, serving/ray_serve/deployments.py comes between
#: the pipeline and the stages, and the engine is serving/engine/vllm_engine.py
WALK = [
    "serving/gateway/app.py",
    "serving/gateway/service.py",
    "serving/core/pipeline.py",
    "serving/core/stages.py",
    "serving/core/prompt_builder.py",
    "tokenizer_ext/prompt_ids.py",
    "serving/testing/fake_engine.py",
    "serving/core/tasks/parsers.py",
]


def reaches_a_boundary(frame: Frame) -> bool:
    """The engine, the tokenizer's token ids, and a task's answer parser."""
    path, name = frame
    return (
        (path == "serving/testing/fake_engine.py" and name.startswith("FakeEngine."))
        or (path == "tokenizer_ext/prompt_ids.py" and name.startswith("PromptEncoder.encode"))
        or path == "serving/core/tasks/parsers.py"
    )


@pytest.fixture(scope="module")
def request_paths(pythia_tokenizer_dir) -> tuple[CallPaths, dict]:
    build = BuildStage.from_model(pythia_tokenizer_dir)
    encoder = build.builder.encoder
    # the warm-up gets another label: a label seen before is not parsed again
    warm_up_reply = iter([" T cell."])
    engine = FakeEngine(lambda ids: next(warm_up_reply, " B cell."), encoder.encode, encoder.decode)
    stages = LocalPipeline(build, engine, DecodeStage.from_model(pythia_tokenizer_dir))
    app = create_app(GatewayConfig(), stages, default_registry())
    body = {
        "model": GatewayConfig().model_name,
        "task": "cell_type_prediction",
        "inputs": {"cell": "CD3D CD3E MS4A1 CD79A NKG7"},
    }

    async def run() -> tuple[CallPaths, dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            await client.post("/v1/completions", json=body)  # first-call set-up left out
            paths = CallPaths(reaches_a_boundary)
            with paths.trace(asyncio.get_running_loop()):
                response = await client.post("/v1/completions", json=body)
        return paths, response.json()

    return asyncio.run(run())


def test_a_cell_type_request_is_followed_in_eight_files(request_paths):
    paths, response = request_paths
    assert response["choices"][0]["result"] == {"kind": "label", "label": "B cell"}
    assert paths.walk(ROUTE) == WALK
    assert len(WALK) == 8


def test_no_file_is_reentered_further_down(request_paths):
    paths, _ = request_paths
    assert paths.returns_to_a_caller() == []


def test_inputs_are_validated_once_per_prompt(request_paths):
    paths, _ = request_paths
    checks = [s for s in paths.stacks if s[-1] == ("serving/core/validation.py", "validate_inputs")]
    assert [s[-2] for s in checks] == [("serving/core/stages.py", "BuildStage._validated")]
    assert paths.calls[("serving/core/validation.py", "validate_inputs")] == 1


#: from `AnnotationJob.run` in order of first reach
BULK_WALK = [
    "serving/bulk/job.py",
    "serving/bulk/input_file.py",
    "tokenizer_ext/expression_source.py",
    "serving/bulk/store.py",
    "serving/bulk/answer.py",
    "serving/core/pipeline.py",
    "serving/core/stages.py",
    "tokenizer_ext/prompt_ids.py",
    "serving/testing/fake_engine.py",
    "serving/core/tasks/parsers.py",
    "serving/bulk/outputs.py",
]
#: from the command (`c2s annotate`'s `run_job`): the command's file first, and the input
#: is checked (`preflight`, in `job.py`) before the job runs
COMMAND_WALK = ["serving/cli/annotate.py", *BULK_WALK]
#: the store's whole-or-nothing writes
FILE_WRITES = {"replacing", "write_bytes", "write_json", "remove_leftovers"}


def reaches_a_bulk_boundary(frame: Frame) -> bool:
    """The request's boundaries, the expression reader and the whole-or-nothing writes."""
    path, name = frame
    return (
        reaches_a_boundary(frame)
        or path == "tokenizer_ext/expression_source.py"
        or (path == "serving/bulk/store.py" and name in FILE_WRITES)
    )


def test_a_bulk_run_walk(tmp_path, pythia_tokenizer_dir):
    """11 files from the job on, 12 from the command: issue 16's bound (docs/request-path.md)."""
    from serving.bulk import AnnotationJob
    from tests.jobs.conftest import small_adata
    from tests.jobs.fakes import fake_runner, job_config

    path = tmp_path / "input.h5ad"
    small_adata(40).write_h5ad(path)
    runner = fake_runner(tokenizer_dir=pythia_tokenizer_dir)

    async def run() -> tuple[CallPaths, int]:
        paths = CallPaths(reaches_a_bulk_boundary)
        config = job_config(path, tmp_path / "out", label_key="label")
        with paths.trace(asyncio.get_running_loop()):
            result = await AnnotationJob(config, runner).run()
        return paths, result.report["cells"]["total"]

    paths, n_cells = asyncio.run(run())
    assert n_cells == 40
    assert paths.walk(("serving/bulk/job.py", "AnnotationJob.run")) == BULK_WALK
    assert paths.returns_to_a_caller() == []


class TracedRun:
    """Stands in for the `asyncio` module of `serving.cli.annotate`: its ``run`` traces the
    command's event loop (the main task is made inside the trace, so that its stack starts
    with the command's frames)."""

    def __init__(self, paths: CallPaths) -> None:
        self.paths = paths

    def run(self, coro):
        loop = asyncio.new_event_loop()
        try:
            with self.paths.trace(loop):
                return loop.run_until_complete(loop.create_task(coro))
        finally:
            loop.close()


def test_a_c2s_annotate_walk(tmp_path, pythia_tokenizer_dir, monkeypatch):
    """The whole command, traced: the execution mode opens the fake runner instead of
    starting vLLM (the engine's own start is set-up, not a step of the walk)."""
    from contextlib import asynccontextmanager

    from serving.bulk import backends
    from serving.cli import annotate
    from tests.jobs.conftest import small_adata
    from tests.jobs.fakes import fake_runner, job_config

    path = tmp_path / "input.h5ad"
    small_adata(40).write_h5ad(path)
    runner = fake_runner(tokenizer_dir=pythia_tokenizer_dir)

    @asynccontextmanager
    async def open_runner(execution):
        yield runner

    paths = CallPaths(reaches_a_bulk_boundary)
    monkeypatch.setattr(backends, "open_runner", open_runner)
    monkeypatch.setattr(annotate, "asyncio", TracedRun(paths))
    config = job_config(path, tmp_path / "out", label_key="label")
    result = annotate.run_job(config, show_progress=False)
    assert result.report["cells"]["total"] == 40
    assert paths.walk(("serving/cli/annotate.py", "run_job")) == COMMAND_WALK
    assert len(COMMAND_WALK) == 12
    assert paths.returns_to_a_caller() == []
