"""The layering rules, checked by importing each layer with what it must not use blocked."""

import subprocess
import sys

import pytest

#: the serving core (``.*``: every module under it) and the engine adapter's interface
#: (its vLLM module imports vLLM, which imports FastAPI for its own server)
SERVING_CORE = ("serving.core.*", "serving.engine")
#: what the core must not import: Ray, HTTP frameworks, and the shells built around it
NOT_IN_CORE = (
    "ray",
    "fastapi",
    "starlette",
    "uvicorn",
    "serving.ray_serve",
    "serving.gateway",
    "serving.bulk",
    "serving.cli",
)
#: tooling beside the product, which the product must never need
TOOLING = ("benchmarks", "k8s", "models", "tests")

# A meta-path finder that refuses the blocked top-level packages, then the imports.
_PROBE = """
import importlib, importlib.abc, sys
import pkgutil
blocked = tuple(sys.argv[1].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(f"layer violation: {name} imported")
sys.meta_path.insert(0, Refuse())
for root in sys.argv[2:]:
    package = importlib.import_module(root.removesuffix(".*"))
    if not root.endswith(".*"):
        continue
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith(".__main__"):  # running it is not importing it
            importlib.import_module(info.name)
"""


def _import_with_blocked(blocked: tuple[str, ...], modules: tuple[str, ...]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(blocked), *modules],
        capture_output=True,
        text=True,
        timeout=300,  # importing all of serving (vLLM, Ray) is slow on a loaded machine
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_serving_core_imports_no_ray_no_http_and_no_shell():
    _import_with_blocked(NOT_IN_CORE, SERVING_CORE)


def test_the_product_needs_none_of_the_tooling_beside_it():
    _import_with_blocked(TOOLING, ("serving.*", "tokenizer_ext.*"))


def test_tokenizer_ext_imports_nothing_of_serving():
    _import_with_blocked(("serving", "ray", "fastapi", "vllm", "torch"), ("tokenizer_ext.*",))


def test_the_probe_catches_a_violation():
    with pytest.raises(AssertionError, match="layer violation: ray"):
        _import_with_blocked(("ray",), ("serving.ray_serve.deployments",))


def test_no_product_source_imports_the_tooling_even_inside_a_function():
    """Imports inside functions escape the import probe until they run (``c2s demo`` once
    imported ``models`` only after its job, and failed there outside the repository)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in [*root.glob("serving/**/*.py"), *root.glob("tokenizer_ext/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [
                f"{path.relative_to(root)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in TOOLING
            ]
    assert found == []
