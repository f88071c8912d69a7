"""Access and data hygiene: the key guards every route but /health and is compared in
constant time; requests cannot make the server read a path or load a model; logs hold
neither the key nor cell payloads; CORS is off unless configured."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import httpx
import pytest

import serving.gateway.middleware as middleware
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.reliability.conftest import asgi_client, error_of, fake_stages, serving_on_loopback

KEY = "k3y-that-must-stay-secret-7f3a9"
BASE = "c2s-demo-pythia"
#: gene names that appear nowhere but in the request, so any log line holding them leaks it
SECRET_GENES = [f"ZZSECRET{i}GENE" for i in range(40)]
SECRET_CELL = " ".join(SECRET_GENES)


def concrete(path: str) -> str:
    return path.replace("{task}", "cell_type_prediction")


# ------------------------------------------------------------------ the key


async def test_every_route_but_health_requires_the_key(fake_gateway):
    app, _ = fake_gateway(api_key=KEY)
    routes = [(m, concrete(r.path)) for r in app.routes for m in getattr(r, "methods", ())]
    routes += [("GET", "/no/such/route"), ("POST", "/v1/audio/speech")]
    assert {path for _, path in routes} >= {
        "/health",
        "/metrics",
        "/v1/models",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/tasks/cell_type_prediction",
        "/openapi.json",
        "/docs",
    }
    async with asgi_client(app) as client:
        for method, path in routes:
            if path == "/health":
                assert (await client.request(method, path)).status_code == 200
                continue
            for headers in ({}, {"Authorization": f"Bearer {KEY[:-1]}"}, {"Authorization": KEY}):
                refused = await client.request(method, path, headers=headers, json={})
                assert refused.status_code == 401, (method, path, headers)
                if method != "HEAD":  # HEAD answers carry no body
                    assert error_of(refused)["type"] == "AuthenticationError"
                assert refused.headers["www-authenticate"] == "Bearer"
            allowed = await client.request(
                method, path, headers={"Authorization": f"Bearer {KEY}"}, json={}
            )
            assert allowed.status_code != 401, (method, path)


async def test_the_key_is_compared_in_constant_time(fake_gateway, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = middleware.hmac.compare_digest

    class RecordingHmac:
        @staticmethod
        def compare_digest(given, expected):
            compared.append((given, expected))
            return real(given, expected)

    monkeypatch.setattr(middleware, "hmac", RecordingHmac)
    app, _ = fake_gateway(api_key=KEY)
    async with asgi_client(app) as client:
        for given in ("", "Bearer x", f"Bearer {KEY}x", f"Bearer {KEY}"):
            await client.get("/v1/models", headers={"Authorization": given} if given else {})
    # every request, right or wrong, is decided by one compare_digest of the whole header
    assert [g for g, _ in compared] == [
        b"",
        b"Bearer x",
        f"Bearer {KEY}x".encode(),
        f"Bearer {KEY}".encode(),
    ]
    assert {e for _, e in compared} == {f"Bearer {KEY}".encode()}


# ------------------------------------------------------------------ paths and models


class OpenedFiles:
    """Files opened (and directories listed) while active, from Python's audit events."""

    EVENTS = ("open", "os.listdir", "os.scandir", "shutil.copyfile", "subprocess.Popen")

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []
        sys.addaudithook(self._hook)  # hooks cannot be removed: this one idles when inactive

    def _hook(self, event: str, args: Sequence) -> None:
        if self.active and event in self.EVENTS and args:
            self.paths.append(str(args[0]))


@pytest.fixture(scope="session")
def opened_files() -> OpenedFiles:
    return OpenedFiles()


def path_bearing_requests(target: str) -> list[tuple[str, dict]]:
    ctp = f"{BASE}/cell_type_prediction"
    return [
        ("/v1/completions", {"model": target, "prompt": "x"}),
        ("/v1/completions", {"model": f"{BASE}/{target}", "prompt": "x"}),
        ("/v1/completions", {"model": f"file://{target}", "prompt": "x"}),
        ("/v1/completions", {"model": BASE, "prompt": target, "max_tokens": 2}),
        ("/v1/completions", {"model": ctp, "inputs": {"cell": target}}),
        ("/v1/completions", {"model": ctp, "inputs": {"cell": "CD3D", "template_file": target}}),
        ("/v1/completions", {"model": ctp, "inputs": {"cell": "CD3D"}, "template_files": {}}),
        ("/v1/completions", {"model": ctp, "inputs": {"cell": "CD3D"}, "template_index": target}),
        ("/v1/chat/completions", {"model": ctp, "messages": [{"role": "user", "content": target}]}),
        ("/v1/chat/completions", {"model": target, "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/tasks/cell_type_prediction", {"inputs": [{"cell": target}]}),
        ("/v1/tasks/cell_type_prediction", {"inputs": [{"cell": "CD3D"}], "model": target}),
        ("/v1/tasks/cell_type_generation", {"inputs": [{"cell_type": target, "n_genes": 3}]}),
        ("/v1/tasks/abstract_to_cells", {"inputs": [{"abstract": target, "n_genes": 3}]}),
        ("/v1/tasks/gene_set_to_genes", {"inputs": [{"gene_set_name": target}]}),
        (f"/v1/tasks/{target}", {"inputs": [{"cell": "CD3D"}]}),
    ]


async def test_no_request_makes_the_server_read_a_path_or_load_a_model(
    fake_gateway, opened_files, tmp_path, tiny_checkpoint
):
    sentinel = tmp_path / "sentinel-model"
    sentinel.mkdir()
    (sentinel / "config.json").write_text("{}")
    targets = [
        str(sentinel),
        str(sentinel / "config.json"),
        "../" * 8 + "etc/passwd",
        str(tiny_checkpoint),
    ]
    app, engine = fake_gateway()
    statuses = []
    async with asgi_client(app) as client:
        await client.get("/v1/models")  # lazy imports happen before the watch starts
        opened_files.active = True
        try:
            for target in targets:
                for route, body in path_bearing_requests(target):
                    statuses.append((await client.post(route, json=body)).status_code)
        finally:
            opened_files.active = False
    assert all(status < 500 for status in statuses)
    touched = [p for p in opened_files.paths if "sentinel" in p or "passwd" in p]
    model_files = [p for p in opened_files.paths if str(tiny_checkpoint) in p]
    assert touched == [] and model_files == [], opened_files.paths
    assert engine.limits.model == "fake"  # no other model was loaded


# ------------------------------------------------------------------ logs


class QuoteRequestsInErrors:
    """Pipeline whose decoder fails with a message quoting the answer and its cells, as
    foreign libraries' errors (pydantic's, for one) quote their input."""

    def __init__(self, stages) -> None:
        self.stages = stages

    def __getattr__(self, name):
        return getattr(self.stages, name)

    async def decode(self, jobs):
        raise RuntimeError(f"cannot decode {jobs!r} for {SECRET_CELL}")


@pytest.mark.engine
async def test_logs_hold_neither_the_key_nor_cell_payloads(
    build_stage, decode_stage, live_gateway, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    stages, _ = fake_stages(build_stage, decode_stage)
    good = create_app(GatewayConfig(api_key=KEY), stages, default_registry())
    failing = create_app(
        GatewayConfig(api_key=KEY), QuoteRequestsInErrors(stages), default_registry()
    )
    bodies = [
        ("/v1/tasks/cell_type_prediction", {"inputs": [{"cell": SECRET_CELL}]}),
        (
            "/v1/completions",
            {"model": f"{BASE}/cell_type_prediction", "inputs": {"cell": SECRET_CELL}},
        ),
        (
            "/v1/chat/completions",
            {
                "model": f"{BASE}/cell_type_prediction",
                "stream": True,
                "messages": [{"role": "user", "content": SECRET_CELL}],
            },
        ),
        ("/v1/tasks/cell_type_prediction", {"inputs": [{"cell": SECRET_CELL, "n_genes": 0}]}),
        ("/v1/completions", {"model": BASE, "prompt": SECRET_CELL, "max_tokens": 2}),
    ]
    statuses = []
    for app in (good, failing):
        async with (
            serving_on_loopback(app, log_level="debug") as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            for key in (KEY, "wrong-" + KEY):
                for route, body in bodies:
                    headers = {"Authorization": f"Bearer {key}"}
                    response = await client.post(route, json=body, headers=headers)
                    statuses.append(response.status_code)
    async with httpx.AsyncClient(base_url=live_gateway, timeout=60) as client:
        for route, body in bodies:  # the real engine: vLLM's own logs too
            statuses.append((await client.post(route, json=body)).status_code)
    assert {200, 400, 401, 500} <= set(statuses)  # success, bad input, refused and a bug
    out, err = capfd.readouterr()
    logged = "\n".join([out, err, caplog.text])
    assert "unhandled error" in logged  # the bug was logged...
    assert KEY not in logged  # ...but never the key
    assert [g for g in SECRET_GENES if g in logged] == []  # nor the cells


# ------------------------------------------------------------------ CORS


async def test_cors_is_off_by_default(fake_gateway):
    app, _ = fake_gateway()
    async with asgi_client(app) as client:
        preflight = await client.options(
            "/v1/models",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        simple = await client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 405
    for response in (preflight, simple):
        assert not any(h.startswith("access-control-") for h in response.headers)


async def test_cors_allows_only_the_configured_origins(fake_gateway):
    app, _ = fake_gateway(api_key=KEY, cors_allow_origins=("https://atlas.example",))
    async with asgi_client(app) as client:
        preflight = await client.options(
            "/v1/tasks/cell_type_prediction",
            headers={
                "Origin": "https://atlas.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        allowed = await client.get(
            "/v1/models",
            headers={"Origin": "https://atlas.example", "Authorization": f"Bearer {KEY}"},
        )
        other = await client.get(
            "/v1/models",
            headers={"Origin": "https://evil.example", "Authorization": f"Bearer {KEY}"},
        )
        keyless = await client.get("/v1/models", headers={"Origin": "https://atlas.example"})
    assert preflight.status_code == 200  # browsers send preflights without the key
    assert preflight.headers["access-control-allow-origin"] == "https://atlas.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert allowed.headers["access-control-allow-origin"] == "https://atlas.example"
    assert "access-control-allow-origin" not in other.headers
    assert keyless.status_code == 401  # CORS never replaces the key
