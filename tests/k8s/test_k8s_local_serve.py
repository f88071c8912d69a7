"""The cpu-dev overlay's serve config, run on a local Ray cluster shaped like the overlay's.

The config is taken from the rendered RayService and deployed the way KubeRay deploys it:
a PUT of serveConfigV2 to the Ray dashboard's Serve API. The local node advertises the
placement resources of the overlay's worker groups and has C2S_API_KEY in its environment,
as the pods get it from the Secret. Two things are substituted: the HTTP address (loopback
and a free port instead of 0.0.0.0:8000), and the checkpoint when the demo checkpoint is
not built (a random tiny one with the same tokenizer). Like the manifests' clusters
(authOptions mode token), the local one requires Ray's token, which KubeRay sends too.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx
import pytest

from serving.ray_serve.config import DEMO_MODEL_DIR
from tests.integration.conftest import free_port
from tests.k8s.conftest import serve_config_of, worker_groups
from tests.task_inputs import CELL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

API_KEY = "local-test-key"
# about 60 s on an idle 2-core machine (the engine starts inside its replica); slack for a
# loaded one
DEPLOY_LIMIT_S = 300


def _advertised_resources(manifests) -> dict[str, float]:
    """The custom resources of every worker group, summed: one node plays all the pods."""
    total: Counter[str] = Counter()
    for group in worker_groups(manifests).values():
        for name, amount in group.get("resources", {}).items():
            total[name] += float(amount)
    return dict(total)


def _ray_token_headers() -> dict[str, str]:
    from ray._private.authentication.http_token_authentication import (
        get_auth_headers_if_auth_enabled,
    )

    return get_auth_headers_if_auth_enabled({})


def _wait_until_running(dashboard: str, app_name: str) -> dict:
    deadline = time.monotonic() + DEPLOY_LIMIT_S
    status = None
    while time.monotonic() < deadline:
        details = httpx.get(
            f"{dashboard}/api/serve/applications/", headers=_ray_token_headers(), timeout=10
        ).json()
        status = details.get("applications", {}).get(app_name, {})
        if status.get("status") == "RUNNING":
            return status
        if status.get("status") == "DEPLOY_FAILED":
            pytest.fail(f"the serve config failed to deploy: {status.get('message')}")
        time.sleep(1)
    pytest.fail(f"the serve config did not reach RUNNING in {DEPLOY_LIMIT_S} s: {status}")


@pytest.fixture(scope="module")
def cpu_dev_cluster(rendered, request):
    """Base URL of the cpu-dev serve config running on a local Ray cluster."""
    import ray
    from ray import serve

    if ray.is_initialized():
        pytest.skip("a Ray cluster is already attached to this process")
    manifests = rendered["cpu-dev"]
    config = serve_config_of(manifests)
    (application,) = config["applications"]
    if not (DEMO_MODEL_DIR / "config.json").exists():
        tiny = request.getfixturevalue("tiny_checkpoint")
        application["args"]["engine"]["model"] = str(tiny)
    else:
        application["args"]["engine"]["model"] = str(DEMO_MODEL_DIR)
    serve_port, dashboard_port = free_port(), free_port()
    config["http_options"].update(host="127.0.0.1", port=serve_port)

    saved = {name: os.environ.get(name) for name in ("C2S_API_KEY", "RAY_USAGE_STATS_ENABLED")}
    # like the Secret on the pods: the Ray processes started below inherit it
    os.environ.update(C2S_API_KEY=API_KEY, RAY_USAGE_STATS_ENABLED="0")
    try:
        ray.init(
            address="local",  # its own cluster, not one a `ray start` left on the machine
            num_cpus=8,
            resources=_advertised_resources(manifests),
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
        )
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        put = httpx.put(
            f"{dashboard}/api/serve/applications/",
            json=config,
            headers=_ray_token_headers(),
            timeout=60,
        )
        assert put.status_code == 200, put.text
        status = _wait_until_running(dashboard, application["name"])
        yield f"http://127.0.0.1:{serve_port}", status
    finally:
        serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_the_cpu_dev_serve_config_serves_health_and_a_task(cpu_dev_cluster):
    url, _ = cpu_dev_cluster
    assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
    assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
    answer = httpx.post(
        f"{url}/v1/tasks/cell_type_prediction",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"inputs": [{"cell": CELL}], "max_tokens": 4},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    (item,) = answer.json()["data"]
    assert item["index"] == 0 and item["prompt_tokens"] > 0


def test_the_deployments_run_with_the_generated_placement(cpu_dev_cluster, rendered):
    _, status = cpu_dev_cluster
    (application,) = serve_config_of(rendered["cpu-dev"])["applications"]
    args = application["args"]
    stage_of = {
        "Engine": "engine_stage",
        "PromptBuilder": "prompt_builder",
        "Decoder": "decoder",
        "Gateway": "gateway_stage",
    }
    deployments = status["deployments"]
    assert set(deployments) == set(stage_of)
    for name, field in stage_of.items():
        applied = deployments[name]["deployment_config"]
        wanted = args[field]
        assert applied["ray_actor_options"]["resources"] == wanted["resources"], name
        assert (
            applied["autoscaling_config"]["max_replicas"] == wanted["autoscaling"]["max_replicas"]
        )
        assert deployments[name]["status"] == "HEALTHY", name
