"""``--endpoint``: the job through a gateway's ``POST /v1/tasks/{task}`` gives the rows the
in-process stages give, sends the key, and waits out 429s."""

from __future__ import annotations

import httpx
import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotationJob, GatewayRunner, RemoteError
from serving.bulk import remote as remote_module
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.jobs.fakes import fake_runner, job_config

KEY = "bulk-key"


def gateway_client(stages, key: str | None = KEY, transport=None) -> httpx.AsyncClient:
    app = create_app(GatewayConfig(api_key=KEY), stages, default_registry())
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=transport or httpx.ASGITransport(app=app), base_url="http://gw", headers=headers
    )


@pytest.mark.parametrize("template", [0, "random"])
async def test_endpoint_rows_equal_in_process_rows(pbmc_path, tmp_path, stages, template):
    settings = {"use_raw": True, "n_genes": 60, "template_index": template}
    local = await AnnotationJob(
        job_config(pbmc_path, tmp_path / "local", **settings), fake_runner(stages)
    ).run()
    async with gateway_client(stages) as client:
        runner = GatewayRunner(client, request_cells=50)
        config = job_config(pbmc_path, tmp_path / "remote", **settings)
        remote = await AnnotationJob(config, runner).run()
    rows = [pq.read_table(r.files["predictions"]) for r in (local, remote)]
    assert rows[1].drop(["model"]).equals(rows[0].drop(["model"]))
    assert set(rows[1].column("model").to_pylist()) == {"c2s-demo-pythia/cell_type_prediction"}


async def test_multi_cell_groups_through_the_endpoint(pbmc_path, tmp_path, stages):
    settings = {"use_raw": True, "task": "multi_cell_type_prediction", "group_key": "louvain"}
    local = await AnnotationJob(
        job_config(pbmc_path, tmp_path / "local", **settings), fake_runner(stages)
    ).run()
    async with gateway_client(stages) as client:
        config = job_config(pbmc_path, tmp_path / "remote", **settings)
        remote = await AnnotationJob(config, GatewayRunner(client)).run()
    rows = [pq.read_table(r.files["predictions"]).drop(["model"]) for r in (local, remote)]
    assert rows[1].equals(rows[0])


async def test_a_wrong_key_is_reported(pbmc_path, tmp_path, stages):
    async with gateway_client(stages, key="wrong") as client:
        config = job_config(pbmc_path, tmp_path / "out", use_raw=True)
        with pytest.raises(RemoteError, match="401"):
            await AnnotationJob(config, GatewayRunner(client)).run()


async def test_busy_gateway_is_retried(stages, monkeypatch):
    monkeypatch.setattr(remote_module, "FIRST_PAUSE_S", 0.01)
    app = create_app(GatewayConfig(api_key=KEY), stages, default_registry())
    inner = httpx.ASGITransport(app=app)
    refusals = []

    class Busy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            if request.method == "POST" and len(refusals) < 2:
                refusals.append(request.url.path)
                return httpx.Response(429, headers={"retry-after": "0"}, json={})
            return await inner.handle_async_request(request)

    async with gateway_client(stages, transport=Busy()) as client:
        runner = GatewayRunner(client)
        payload = {"cell": "CD74 HLA-DRA CD79A", "n_genes": 3}
        answers = await runner.run("cell_type_prediction", [payload], [0])
    assert refusals == ["/v1/tasks/cell_type_prediction"] * 2
    assert answers[0].result["kind"] == "label" and answers[0].prompt_tokens > 0


async def test_connect_sends_the_key():
    runner = GatewayRunner.connect("http://gw:8000/", "k", request_cells=8, timeout_s=5)
    assert runner.client.headers["authorization"] == "Bearer k"
    assert str(runner.client.base_url) == "http://gw:8000"
    await runner.aclose()


async def test_wide_atlas_rows_equal_through_the_endpoint(tmp_path, stages):
    """Genes outside the model's list, ranked ties: the in-process path (prompts from ranked
    genes) and the endpoint (sentences) give the same rows."""
    from benchmarks.wide_atlas import write_wide_atlas

    atlas = write_wide_atlas(tmp_path / "wide.h5ad", 300, n_genes=3000, expressed=250)
    settings = {"n_genes": 200, "template_index": "random", "read_rows": 64, "shard_cells": 50}
    local = await AnnotationJob(
        job_config(atlas, tmp_path / "local", **settings), fake_runner(stages)
    ).run()
    async with gateway_client(stages) as client:
        config = job_config(atlas, tmp_path / "remote", **settings)
        remote = await AnnotationJob(config, GatewayRunner(client, request_cells=40)).run()
    rows = [pq.read_table(r.files["predictions"]).drop(["model"]) for r in (local, remote)]
    assert rows[1].equals(rows[0])
    assert len(set(rows[0].column("prediction").to_pylist())) > 1  # answers follow the ids
