"""What the manifests promise, checked on each rendered overlay: drain, readiness, the API
key, the model cache, sizes, the ingress path and the annotation job."""

from __future__ import annotations

import base64
import json
import re
import shlex

import pytest

from k8s.serve_config import OVERLAYS, SERVE_PORT, deployed_stages
from serving.ray_serve.config import AppConfig
from tests.k8s.conftest import app_config_of, one, ray_pod_specs, serve_config_of

#: time Ray needs after SIGTERM, on top of the preStop drain
SHUTDOWN_MARGIN_S = 10
RAY_KINDS = ("RayService", "RayJob")


@pytest.fixture(params=OVERLAYS)
def overlay(request):
    return request.param


@pytest.fixture
def manifests(overlay, rendered):
    return rendered[overlay]


@pytest.fixture
def app_config(manifests) -> AppConfig:
    return app_config_of(manifests)


def _container(pod_spec):
    return pod_spec["containers"][0]


def _prestop_sleep_s(pod_spec) -> int:
    command = _container(pod_spec)["lifecycle"]["preStop"]["exec"]["command"]
    (seconds,) = re.findall(r"\bsleep (\d+)\s*$", command[-1])
    return int(seconds)


def test_graceful_drain_covers_the_gateways_drain_timeout(manifests, app_config):
    drain_s = app_config.gateway.drain_timeout_s
    service = one(manifests, "RayService")
    assert service["spec"]["rayClusterDeletionDelaySeconds"] >= drain_s
    for group, pod in ray_pod_specs(manifests).items():
        sleep_s = _prestop_sleep_s(pod)
        assert sleep_s >= drain_s, group
        assert pod["terminationGracePeriodSeconds"] >= sleep_s + SHUTDOWN_MARGIN_S, group
        if group != "head":
            assert (
                "ray drain-node" in _container(pod)["lifecycle"]["preStop"]["exec"]["command"][-1]
            )


def test_serving_pods_are_ready_when_the_gateway_health_route_is(manifests, app_config):
    for group, pod in ray_pod_specs(manifests).items():
        if group == "head":
            continue  # KubeRay's own probe: the head must be ready before the app exists
        probe = _container(pod)["readinessProbe"]["httpGet"]
        assert probe == {"path": "/health", "port": SERVE_PORT}, group
        ports = {p["name"]: p["containerPort"] for p in _container(pod)["ports"]}
        assert ports["serve"] == SERVE_PORT
    assert serve_config_of(manifests)["http_options"]["port"] == SERVE_PORT


def test_the_ingress_reaches_the_serve_service_of_the_rayservice(manifests):
    spec = one(manifests, "RayService")["spec"]
    assert spec["excludeHeadPodFromServeSvc"] is True
    service = spec["serveService"]
    (port,) = service["spec"]["ports"]
    assert port == {"name": "serve", "port": SERVE_PORT}
    (rule,) = one(manifests, "Ingress")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "serve"}}


def test_the_ingress_lets_through_the_bodies_the_gateway_accepts(manifests, app_config):
    annotations = one(manifests, "Ingress")["metadata"]["annotations"]
    size = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m") and int(size[:-1]) * 2**20 >= app_config.gateway.max_body_bytes


def test_the_api_key_comes_from_the_secret_on_every_serving_pod(manifests):
    secret = one(manifests, "Secret", "c2s-api-key")
    assert base64.b64decode(secret["data"]["api-key"])
    for group, pod in ray_pod_specs(manifests).items():
        env = {e["name"]: e for e in _container(pod)["env"]}
        assert env["C2S_API_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "c2s-api-key", "key": "api-key"}
        }, group
    assert "api_key" not in json.dumps(serve_config_of(manifests))


def test_every_container_has_cpu_and_memory_requests_and_limits(manifests):
    for kind in RAY_KINDS:
        for group, pod in ray_pod_specs(manifests, kind).items():
            resources = _container(pod)["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (kind, group, bound)
    autoscaler = one(manifests, "RayService")["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert {"requests", "limits"} <= set(autoscaler["resources"])


def test_every_deployment_autoscales(app_config):
    for stage in (getattr(app_config, name) for name in deployed_stages(app_config)):
        assert stage.autoscaling is not None
        assert stage.autoscaling.min_replicas <= stage.autoscaling.max_replicas
        assert stage.max_ongoing_requests >= stage.autoscaling.target_ongoing_requests


def _mounts(pod_spec, claim: str) -> list[str]:
    volumes = {
        v["name"]
        for v in pod_spec["volumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    }
    return [m["mountPath"] for m in _container(pod_spec)["volumeMounts"] if m["name"] in volumes]


def test_every_engine_and_stage_pod_shares_one_model_cache_path(manifests):
    claims = {m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"}
    assert "c2s-model-cache" in claims
    pods = dict(ray_pod_specs(manifests))
    pods["annotate-engine"] = ray_pod_specs(manifests, "RayJob")["engine"]
    paths = set()
    for group, pod in pods.items():
        (mount,) = _mounts(pod, "c2s-model-cache")
        env = {e["name"]: e.get("value") for e in _container(pod)["env"]}
        assert env["HF_HOME"].startswith(mount + "/"), group
        paths.add((mount, env["HF_HOME"]))
    assert len(paths) == 1, "the tokenizer path resolved on one pod must exist on the others"


def test_the_annotation_job_runs_c2s_annotate_on_the_datasets_volume(overlay, manifests):
    job = one(manifests, "RayJob")["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[:2] == ["c2s", "annotate"]
    data_input, out = argv[2], argv[argv.index("--out") + 1]
    worker = ray_pod_specs(manifests, "RayJob")["engine"]
    (mount,) = _mounts(worker, "c2s-datasets")
    assert data_input.startswith(mount + "/") and data_input.endswith(".h5ad")
    assert out.startswith(mount + "/")
    # the driver is placed on the worker that has the data and the engine's hardware
    wanted = json.loads(job["entrypointResources"])
    (group,) = job["rayClusterSpec"]["workerGroupSpecs"]
    assert all(float(group["resources"][k]) >= v for k, v in wanted.items())
    gpus = _container(worker)["resources"]["limits"].get("nvidia.com/gpu")
    if overlay == "gpu":
        assert job["entrypointNumGpus"] >= 1 and int(gpus) >= job["entrypointNumGpus"]
    else:
        assert "entrypointNumGpus" not in job and gpus is None
        assert "/app/models/c2s-demo-pythia" in argv


def test_every_container_runs_the_overlays_image_target(overlay, manifests):
    images = set()
    for kind in RAY_KINDS:
        for pod in ray_pod_specs(manifests, kind).values():
            images |= {c["image"] for c in pod["containers"]}
    (image,) = images
    assert image.endswith({"gpu": "-gpu", "cpu-dev": "-cpu"}[overlay])
