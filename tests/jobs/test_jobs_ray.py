"""The Ray Serve mode: `open_runner` wires `RayPipeline` over the app's deployment handles.

Handles are stood in for by objects with Ray's calling convention (``handle.method.remote``
returns an awaitable with ``cancel``) over the deployments' own plain classes, so the job
runs through the real `RayPipeline`, `PromptBuilderServer` and `DecoderServer` without a
cluster (``c2s serve`` itself is covered by tests/integration).
"""

from __future__ import annotations

import asyncio
import inspect

import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotationJob, ExecutionConfig, open_runner
from tests.jobs.fakes import MODEL_NAME, fake_runner, job_config

ray = pytest.importorskip("ray")


class Method:
    def __init__(self, function) -> None:
        self.function = function

    def remote(self, *args):
        async def call():
            value = self.function(*args)
            return await value if inspect.isawaitable(value) else value

        return asyncio.ensure_future(call())


class Handle:
    """``serve.get_deployment_handle``'s answer, over a local object; records each method
    called through it in ``calls``."""

    def __init__(self, target, calls: list[str] | None = None) -> None:
        self.target = target
        self.calls = calls if calls is not None else []

    def __getattr__(self, name: str) -> Method:
        self.calls.append(name)
        return Method(getattr(self.target, name))


def engine_replica(engine):
    """The real `EngineServer` over a fake engine (its ``__init__`` would start vLLM)."""
    from serving.ray_serve.deployments import EngineServer

    replica = object.__new__(EngineServer)
    replica.engine = engine
    return replica


async def test_ray_mode_gives_the_in_process_rows(
    pbmc_path, tmp_path, stages, pythia_tokenizer_dir, monkeypatch
):
    from ray import serve

    from serving.ray_serve.deployments import DecoderServer, PromptBuilderServer

    replicas = {
        "Engine": engine_replica(stages.engine),
        "PromptBuilder": PromptBuilderServer(str(pythia_tokenizer_dir), None),
        "Decoder": DecoderServer(str(pythia_tokenizer_dir)),
    }
    asked, calls = [], {name: [] for name in replicas}

    def get_deployment_handle(name, app_name):
        asked.append((name, app_name))
        return Handle(replicas[name], calls[name])

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(serve, "get_deployment_handle", get_deployment_handle)
    settings = {"use_raw": True, "n_genes": 50, "task": "multi_cell_type_prediction"}
    settings["group_key"] = "louvain"
    local = await AnnotationJob(
        job_config(pbmc_path, tmp_path / "local", **settings), fake_runner(stages)
    ).run()
    execution = ExecutionConfig(mode="ray", ray_app="atlas", model_dir=pythia_tokenizer_dir)
    async with open_runner(execution) as runner:
        config = job_config(pbmc_path, tmp_path / "ray", **settings)
        remote = await AnnotationJob(config, runner).run()
    assert sorted(asked) == [("Decoder", "atlas"), ("Engine", "atlas"), ("PromptBuilder", "atlas")]
    # one engine call per chunk of cells, as one build and one decode call are
    generated = [c for c in calls["Engine"] if c != "limits"]
    assert set(generated) == {"complete_many"}
    assert len(generated) == calls["PromptBuilder"].count("build") == len(calls["Decoder"]) > 0
    rows = [pq.read_table(r.files["predictions"]) for r in (local, remote)]
    assert rows[1].drop(["model"]).equals(rows[0].drop(["model"]))
    assert set(rows[0].column("model").to_pylist()) == {MODEL_NAME}
    assert set(rows[1].column("model").to_pylist()) == {"fake"}  # the engine's own name


async def test_a_missing_app_is_explained(monkeypatch):
    from ray import serve

    from serving.bulk import AnnotateError

    def missing(name, app_name):
        raise KeyError(f"no application {app_name!r}")

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(serve, "get_deployment_handle", missing)
    with pytest.raises(AnnotateError, match=r"no deployment 'Engine'.*--ray-app"):
        async with open_runner(ExecutionConfig(mode="ray", ray_app="nope")):
            pass
