"""The manifests of k8s/, as kustomize would render them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s.serve_config import OVERLAYS
from serving.ray_serve.config import AppConfig
from tests.k8s.kustomize import Manifest, render
from tests.k8s.schemas import CRD_DIR

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"


@pytest.fixture(scope="session")
def kuberay_crds() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip("../shared/kuberay-crds is not beside the repository")
    return CRD_DIR


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory) -> Path:
    """A copy of k8s/ with the gpu overlay's git-ignored key file written, as a deployer
    would write it."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S_DIR, root, ignore=shutil.ignore_patterns("api-key.env"))
    (root / "overlays" / "gpu" / "api-key.env").write_text("api-key=test-only-key\n")
    return root


@pytest.fixture(scope="session")
def rendered(k8s_copy) -> dict[str, list[Manifest]]:
    """Each overlay's output, by overlay name."""
    return {overlay: render(k8s_copy / "overlays" / overlay) for overlay in OVERLAYS}


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    (found,) = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    return found


def serve_config_of(manifests: list[Manifest]) -> dict[str, Any]:
    return yaml.safe_load(one(manifests, "RayService")["spec"]["serveConfigV2"])


def app_config_of(manifests: list[Manifest]) -> AppConfig:
    """The `AppConfig` that the RayService's serve config builds its application from."""
    (application,) = serve_config_of(manifests)["applications"]
    return AppConfig.model_validate(application["args"])


def worker_groups(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    cluster = one(manifests, "RayService")["spec"]["rayClusterConfig"]
    return {group["groupName"]: group for group in cluster["workerGroupSpecs"]}


def ray_pod_specs(manifests: list[Manifest], kind: str = "RayService") -> dict[str, Any]:
    """The pod specs of a RayService's (or RayJob's) head and worker groups, by group."""
    spec = one(manifests, kind)["spec"]
    cluster = spec["rayClusterConfig"] if kind == "RayService" else spec["rayClusterSpec"]
    pods = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster["workerGroupSpecs"]:
        pods[group["groupName"]] = group["template"]["spec"]
    return pods
