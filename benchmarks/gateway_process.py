"""Our gateway as users run it: ``c2s serve`` (Ray Serve) in a child process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from benchmarks.checkpoints import WORK_DIR
from benchmarks.machine import REPO_ROOT

LOG_DIR = WORK_DIR / "logs"


class GatewayFailed(RuntimeError):
    """``c2s serve`` exited or never became healthy."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """One ``c2s serve`` over ``model`` with the engine's ``cpu_cores`` setting.

    Use as a context manager; ``start_s`` is the time from launch to ``/health`` = 200.
    """

    def __init__(self, model: Path, cpu_cores: str, name: str, startup_limit_s: float = 600):
        self.model = model
        self.cpu_cores = cpu_cores
        self.name = name
        self.startup_limit_s = startup_limit_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = WORK_DIR / "specs" / f"{name}.yaml"
        self.log_path = LOG_DIR / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.start_s: float | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "serving.cli",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            str(self.port),
        ]

    def describe(self) -> dict:
        return {
            "command": " ".join(_relative(c) for c in self.command),
            "config": yaml.safe_load(self.config_path.read_text()),
            "start_s": self.start_s,
            "log": _relative(str(self.log_path)),
        }

    def __enter__(self) -> GatewayProcess:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        config = {"engine": {"model": str(self.model), "cpu_cores": self.cpu_cores}}
        self.config_path.write_text(yaml.safe_dump(config))
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        }
        env.pop("C2S_API_KEY", None)
        start = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.start_s = round(time.perf_counter() - start, 2)
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text()[-3000:]
                raise GatewayFailed(f"c2s serve exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise GatewayFailed(f"c2s serve was not healthy within {self.startup_limit_s:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()


def _relative(part: str) -> str:
    try:
        return str(Path(part).relative_to(REPO_ROOT))
    except ValueError:
        return part
