"""Renders a kustomization the way ``kubectl apply -k`` would, for the subset k8s/ uses.

kustomize itself is not installed here, so the tests render overlays with this: resources
(files and directories), ``images``, ``patches`` (JSON 6902 patches with a target) and
``secretGenerator`` (env files and literals, without a name hash). Every other field is an
error, so the renderer can never silently skip something kustomize would do.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "images", "patches", "secretGenerator"}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not do, or a patch fails."""


def load_manifests(path: Path) -> list[Manifest]:
    """The YAML documents of one file, empty ones dropped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Manifest]:
    """The manifests that ``kustomize build directory`` outputs."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    manifests: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        manifests += render(path) if path.is_dir() else load_manifests(path)
    for generator in kustomization.get("secretGenerator", []):
        manifests.append(generate_secret(generator, directory))
    _refuse_duplicates(manifests, directory)
    for patch in kustomization.get("patches", []):
        manifests = apply_patch(manifests, patch, directory)
    for image in kustomization.get("images", []):
        for manifest in manifests:
            set_image(manifest, image)
    return manifests


def _refuse_duplicates(manifests: list[Manifest], directory: Path) -> None:
    seen: set[tuple[str, str]] = set()
    for manifest in manifests:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)


def generate_secret(generator: dict[str, Any], directory: Path) -> Manifest:
    """The Secret of one ``secretGenerator`` entry (``envs`` files and ``literals``)."""
    unknown = set(generator) - {"name", "envs", "literals", "options"}
    if unknown:
        raise KustomizeError(f"unsupported secretGenerator fields {sorted(unknown)}")
    if generator.get("options") != {"disableNameSuffixHash": True}:
        # With a hash suffix, kustomize renames the Secret and rewrites references to it
        # only in the kinds it knows, never inside a RayService or RayJob.
        raise KustomizeError(f"{generator['name']}: set options.disableNameSuffixHash: true")
    pairs = list(generator.get("literals", []))
    for env_file in generator.get("envs", []):
        lines = (directory / env_file).read_text().splitlines()
        pairs += [line for line in lines if line.strip() and not line.startswith("#")]
    data = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        data[key.strip()] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": data,
    }


def apply_patch(
    manifests: list[Manifest], patch: dict[str, Any], directory: Path
) -> list[Manifest]:
    """``manifests`` with one JSON 6902 patch applied to every manifest its target names."""
    if set(patch) != {"path", "target"} or set(patch["target"]) - {"kind", "name"}:
        raise KustomizeError(f"only patches with a path and a kind/name target: {patch}")
    ops = yaml.safe_load((directory / patch["path"]).read_text())
    if not isinstance(ops, list):
        raise KustomizeError(f"{patch['path']}: only JSON 6902 patches (a list of operations)")
    target = patch["target"]
    hits = 0
    patched = []
    for manifest in manifests:
        matches = manifest["kind"] == target["kind"] and target.get("name") in (
            None,
            manifest["metadata"]["name"],
        )
        if matches:
            hits += 1
            manifest = apply_json_patch(manifest, ops)
        patched.append(manifest)
    if not hits:
        raise KustomizeError(f"{patch['path']}: no resource matches {target}")
    return patched


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise KustomizeError(f"not a JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _child(node: Any, token: str, pointer: str) -> Any:
    try:
        return node[int(token)] if isinstance(node, list) else node[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise KustomizeError(f"{pointer}: {token!r} does not exist") from None


def apply_json_patch(document: Manifest, ops: list[dict[str, Any]]) -> Manifest:
    """RFC 6902 ``add``, ``remove``, ``replace`` and ``test`` on a copy of ``document``."""
    document = copy.deepcopy(document)
    for op in ops:
        pointer = op["path"]
        *parents, last = _tokens(pointer)
        node: Any = document
        for token in parents:
            node = _child(node, token, pointer)
        kind = op["op"]
        if kind == "test":
            if _child(node, last, pointer) != op["value"]:
                raise KustomizeError(f"test failed at {pointer}: expected {op['value']!r}")
        elif kind == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
        elif kind == "add":
            node[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            _child(node, last, pointer)
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            _child(node, last, pointer)
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise KustomizeError(f"unsupported patch operation {kind!r}")
    return document


def _split_image(reference: str) -> tuple[str, str | None]:
    """``name[:tag]`` into name and tag (a ``:`` after the last ``/`` starts the tag)."""
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, None
    return name, tag


def set_image(node: Any, image: dict[str, str]) -> None:
    """kustomize's ``images``: rewrite every container image named ``image["name"]``,
    in any ``containers`` or ``initContainers`` list at any depth (custom resources too)."""
    if set(image) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"unsupported images fields: {image}")
    if isinstance(node, list):
        for item in node:
            set_image(item, image)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                name, tag = _split_image(container.get("image", ""))
                if name == image["name"]:
                    new_name = image.get("newName", name)
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
        set_image(value, image)
