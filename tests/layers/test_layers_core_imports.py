"""The layering rules, checked by importing each layer with what it must not use blocked."""

import subprocess
import sys

import pytest

#: the serving core: no Ray, no HTTP framework
SERVING_CORE = (
    "serving.tasks",
    "serving.prompt_builder",
    "serving.decoder",
    "serving.stages",
    "serving.pipeline",
    "serving.label_sets",
    "serving.label_scoring",
    "serving.embeddings",
    "serving.protocol",
    "serving.engine",
)

# A meta-path finder that refuses the blocked top-level packages, then the imports.
_PROBE = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"layer violation: {name} imported")
sys.meta_path.insert(0, Refuse())
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


def _import_with_blocked(blocked: tuple[str, ...], modules: tuple[str, ...]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(blocked), *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_serving_core_imports_no_ray_and_no_http():
    _import_with_blocked(("ray", "fastapi", "starlette", "uvicorn"), SERVING_CORE)


def test_tokenizer_ext_imports_nothing_of_serving():
    _import_with_blocked(("serving", "ray", "fastapi", "vllm", "torch"), ("tokenizer_ext",))


def test_the_probe_catches_a_violation():
    with pytest.raises(AssertionError, match="layer violation: ray"):
        _import_with_blocked(("ray",), ("serving.deployments",))
