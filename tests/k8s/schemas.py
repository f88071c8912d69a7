"""Validation of manifests against the schemas a cluster would apply.

- KubeRay kinds: the ``openAPIV3Schema`` of the real CRDs in ``../shared/kuberay-crds``,
  made strict the way ``kubectl apply`` (server-side field validation ``Strict``) is:
  unknown fields are errors.
- Core kinds: the bundled, offline schemas of ``kubernetes-validate`` (strict variant).
  The pod templates, Services and object metadata embedded in the custom resources are
  checked against the same core schemas, which go further than the CRDs' copies.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds"
CRD_FILES = {
    "RayService": "ray.io_rayservices.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCluster": "ray.io_rayclusters.yaml",
}
#: Kubernetes versions whose core schemas the manifests must satisfy: an old one still in
#: wide use, and the newest the validator bundles.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())


def strict_openapi(node: Any) -> Any:
    """A CRD's OpenAPI v3 schema as JSON Schema that refuses unknown fields.

    ``nullable`` becomes a ``null`` type. Fields guarded by CEL rules
    (``x-kubernetes-validations``), which no Python validator evaluates, become ``false``:
    a manifest that sets one fails here instead of passing unchecked.
    """
    if isinstance(node, list):
        return [strict_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "x-kubernetes-validations" in node:
        return False
    schema = {key: strict_openapi(value) for key, value in node.items()}
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not open_object:
        schema["additionalProperties"] = False
    return schema


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.Draft7Validator:
    # libyaml's loader when there is one: the CRDs are megabytes of YAML
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    group, _, version = api_version.partition("/")
    assert group == crd["spec"]["group"], f"{kind} is in {crd['spec']['group']}, not {group}"
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema.Draft7Validator(strict_openapi(served["schema"]["openAPIV3Schema"]))


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    validator = crd_validator(manifest["kind"], manifest["apiVersion"])
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]


def core_error(manifest: dict[str, Any], version: str) -> str | None:
    """Why ``manifest`` fails its core Kubernetes schema, or None."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path))
        return f"{manifest['kind']}/{manifest['metadata'].get('name')}: {path}: {error.message}"
    return None


def _pod_template(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name},
        "template": template,
    }


def _cluster_objects(cluster: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    yield _pod_template(cluster["headGroupSpec"]["template"], f"{name}-head")
    for group in cluster.get("workerGroupSpecs", []):
        yield _pod_template(group["template"], f"{name}-{group['groupName']}")


def embedded_core_objects(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The core objects inside a KubeRay resource, as standalone manifests: its metadata
    (checked as a ConfigMap's, the one ObjectMeta schema of every kind), pod templates and
    serve Service."""
    name = manifest["metadata"]["name"]
    yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    spec = manifest["spec"]
    if manifest["kind"] == "RayService":
        yield from _cluster_objects(spec["rayClusterConfig"], name)
        if "serveService" in spec:
            yield {"apiVersion": "v1", "kind": "Service", **spec["serveService"]}
    elif manifest["kind"] == "RayJob":
        yield from _cluster_objects(spec["rayClusterSpec"], name)
        if "submitterPodTemplate" in spec:
            yield _pod_template(spec["submitterPodTemplate"], f"{name}-submitter")
