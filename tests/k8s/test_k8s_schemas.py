"""Every manifest of k8s/ (each base file, and each overlay as rendered) validates against
the real KubeRay CRDs and the core Kubernetes schemas; the validators are not vacuous."""

from __future__ import annotations

import copy

import pytest

from k8s.serve_config import OVERLAYS
from tests.k8s.conftest import K8S_DIR, one
from tests.k8s.kustomize import KustomizeError, apply_json_patch, load_manifests, render, set_image
from tests.k8s.schemas import (
    CRD_FILES,
    KUBERNETES_VERSIONS,
    core_error,
    crd_errors,
    embedded_core_objects,
)

BASE_FILES = sorted((K8S_DIR / "base").glob("*.yaml"))
SOURCES = [f"base/{path.name}" for path in BASE_FILES if path.name != "kustomization.yaml"]


@pytest.fixture(params=SOURCES + [f"overlay:{overlay}" for overlay in OVERLAYS])
def manifests(request, rendered):
    """The manifests of one base file, or of one rendered overlay."""
    if request.param.startswith("overlay:"):
        return rendered[request.param.removeprefix("overlay:")]
    return load_manifests(K8S_DIR / request.param)


def test_the_base_renders_to_its_files():
    files = [
        m for path in BASE_FILES if path.name != "kustomization.yaml" for m in load_manifests(path)
    ]
    assert sorted(map(str, render(K8S_DIR / "base"))) == sorted(map(str, files))


def test_kuberay_resources_validate_against_the_real_crds(manifests, kuberay_crds):
    kuberay = [m for m in manifests if m["kind"] in CRD_FILES]
    for manifest in kuberay:
        assert crd_errors(manifest) == [], manifest["metadata"]["name"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_validate_against_the_kubernetes_schemas(manifests, version):
    objects = []
    for manifest in manifests:
        if manifest["kind"] in CRD_FILES:
            objects += embedded_core_objects(manifest)
        else:
            objects.append(manifest)
    errors = [core_error(o, version) for o in objects]
    assert [e for e in errors if e] == []


def test_every_overlay_renders_every_resource(rendered):
    for overlay, manifests in rendered.items():
        names = sorted((m["kind"], m["metadata"]["name"]) for m in manifests)
        assert names == [
            ("Ingress", "c2s-gateway"),
            ("PersistentVolumeClaim", "c2s-datasets"),
            ("PersistentVolumeClaim", "c2s-model-cache"),
            ("RayJob", "c2s-annotate"),
            ("RayService", "c2s"),
            ("Secret", "c2s-api-key"),
        ], overlay


def test_the_crd_validator_refuses_unknown_fields_and_wrong_types(rendered, kuberay_crds):
    service = one(rendered["gpu"], "RayService")
    typo = copy.deepcopy(service)
    typo["spec"]["serveConfigv2"] = typo["spec"].pop("serveConfigV2")
    assert any("serveConfigv2" in e for e in crd_errors(typo))
    wrong = copy.deepcopy(service)
    wrong["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "four"
    assert any("maxReplicas" in e for e in crd_errors(wrong))
    quantity = copy.deepcopy(service)
    container = quantity["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0]
    container["resources"]["limits"]["memory"] = "eight gigabytes"
    assert any("memory" in e for e in crd_errors(quantity))


def test_the_core_validator_refuses_unknown_fields_in_embedded_pods(rendered):
    service = copy.deepcopy(one(rendered["gpu"], "RayService"))
    worker = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]
    worker["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    errors = [core_error(o, KUBERNETES_VERSIONS[0]) for o in embedded_core_objects(service)]
    assert any(e and "paht" in e for e in errors)
    ingress = copy.deepcopy(one(rendered["gpu"], "Ingress"))
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["servicename"] = "x"
    assert "servicename" in core_error(ingress, KUBERNETES_VERSIONS[0])


def test_the_gpu_overlay_does_not_render_without_a_key_file(k8s_copy, tmp_path):
    import shutil

    root = tmp_path / "k8s"
    shutil.copytree(k8s_copy, root)
    (root / "overlays" / "gpu" / "api-key.env").unlink()
    with pytest.raises(FileNotFoundError, match=r"api-key\.env"):
        render(root / "overlays" / "gpu")


def test_json_patches_add_replace_remove_and_test():
    doc = {"a": {"b/c": [1, 2]}, "d": 1}
    patched = apply_json_patch(
        doc,
        [
            {"op": "test", "path": "/d", "value": 1},
            {"op": "add", "path": "/a/b~1c/-", "value": 3},
            {"op": "add", "path": "/a/b~1c/0", "value": 0},
            {"op": "replace", "path": "/d", "value": 2},
            {"op": "remove", "path": "/a/b~1c/1"},
            {"op": "add", "path": "/e", "value": {"f": 1}},
        ],
    )
    assert patched == {"a": {"b/c": [0, 2, 3]}, "d": 2, "e": {"f": 1}}
    assert doc == {"a": {"b/c": [1, 2]}, "d": 1}
    with pytest.raises(KustomizeError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/d", "value": 2}])
    with pytest.raises(KustomizeError, match="does not exist"):
        apply_json_patch(doc, [{"op": "replace", "path": "/x", "value": 2}])
    with pytest.raises(KustomizeError, match="does not exist"):
        apply_json_patch(doc, [{"op": "add", "path": "/x/y", "value": 2}])


def test_images_are_rewritten_in_containers_at_any_depth():
    doc = {
        "spec": {
            "a": {"template": {"spec": {"containers": [{"image": "c2s-serving"}]}}},
            "b": [{"initContainers": [{"image": "c2s-serving:old"}, {"image": "other:1"}]}],
        }
    }
    set_image(doc, {"name": "c2s-serving", "newName": "reg.io:5000/c2s", "newTag": "gpu"})
    assert doc["spec"]["a"]["template"]["spec"]["containers"][0]["image"] == "reg.io:5000/c2s:gpu"
    assert [c["image"] for c in doc["spec"]["b"][0]["initContainers"]] == [
        "reg.io:5000/c2s:gpu",
        "other:1",
    ]
