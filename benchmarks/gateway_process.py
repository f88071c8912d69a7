"""Servers as users run them, in child processes on 127.0.0.1: ``c2s serve`` (Ray Serve)
and, as its peer, vLLM's own OpenAI server with our engine's settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from benchmarks.checkpoints import WORK_DIR
from benchmarks.machine import REPO_ROOT
from serving.testing.process_group import stop_process_group

LOG_DIR = WORK_DIR / "logs"


class GatewayFailed(RuntimeError):
    """A server exited or never became healthy."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One HTTP server in its own session; use as a context manager.

    ``start_s`` is the time from launch to ``/health`` = 200. Subclasses say the command,
    the extra environment and any config file to write first.
    """

    def __init__(self, name: str, port: int | None = None, startup_limit_s: float = 600):
        self.name = name
        self.startup_limit_s = startup_limit_s
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = LOG_DIR / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.start_s: float | None = None

    @property
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def prepare(self) -> None:
        """Write what the command reads (a config file)."""

    def describe(self) -> dict:
        return {
            "command": " ".join(_relative(c) for c in self.command),
            "start_s": self.start_s,
            "log": _relative(str(self.log_path)),
        }

    def __enter__(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.prepare()
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "VLLM_LOGGING_STREAM": "ext://sys.stderr",
            **self.environment(),
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
                raise GatewayFailed(f"{self.name} exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise GatewayFailed(f"{self.name} was not healthy within {self.startup_limit_s:.0f} s")

    def stop(self) -> None:
        stop_process_group(self.process)

    def __exit__(self, *exc) -> None:
        self.stop()


class GatewayProcess(ServerProcess):
    """One ``c2s serve`` over ``model`` with the engine's ``cpu_cores`` setting, on a new
    local Ray cluster or on the cluster at ``ray_address``."""

    def __init__(
        self,
        model: Path,
        cpu_cores: str,
        name: str,
        *,
        port: int | None = None,
        ray_address: str | None = None,
        config: dict | None = None,
        startup_limit_s: float = 600,
    ):
        super().__init__(name, port, startup_limit_s)
        self.model = model
        self.cpu_cores = cpu_cores
        self.ray_address = ray_address
        #: more `AppConfig` fields (``{"gateway": {...}}``) beside the engine's
        self.extra_config = config or {}
        self.config_path = WORK_DIR / "specs" / f"{name}.yaml"

    @property
    def command(self) -> list[str]:
        command = [sys.executable, "-m", "serving.cli", "serve", "--config"]
        command += [str(self.config_path), "--port", str(self.port)]
        command += ["--log-file", str(LOG_DIR / f"{self.name}-libraries.log")]
        return command + (["--address", self.ray_address] if self.ray_address else [])

    def environment(self) -> dict[str, str]:
        from serving.testing.ray_head import LOOPBACK_CLIENT_ENV

        # never another user's cluster: an explicit address, or a new local one
        return dict(LOOPBACK_CLIENT_ENV) if self.ray_address else {"RAY_ADDRESS": ""}

    def prepare(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        config = {"engine": {"model": str(self.model), "cpu_cores": self.cpu_cores}}
        config.update(self.extra_config)
        self.config_path.write_text(yaml.safe_dump(config))

    def describe(self) -> dict:
        return {**super().describe(), "config": yaml.safe_load(self.config_path.read_text())}


class VllmServerProcess(ServerProcess):
    """``python -m vllm.entrypoints.openai.api_server`` with the engine settings that
    `serving.engine.vllm_engine` gives the gateway's engine for ``config``: the same
    engine arguments and the same CPU environment (KV cache size, thread binding)."""

    def __init__(self, config, name: str, *, port: int | None = None, startup_limit_s=600):
        super().__init__(name, port, startup_limit_s)
        self.config = config

    @property
    def command(self) -> list[str]:
        from serving.engine.checkpoint import read_checkpoint_facts, resolve_max_model_len
        from serving.engine.vllm_engine import _engine_args

        max_model_len = resolve_max_model_len(self.config, read_checkpoint_facts(self.config.model))
        args = _engine_args(self.config, max_model_len)
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--model", args.model]
        command += ["--served-model-name", self.config.public_name, "--dtype", args.dtype]
        command += ["--max-model-len", str(args.max_model_len), "--seed", str(args.seed)]
        command += ["--max-num-seqs", str(args.max_num_seqs)]
        if args.max_num_batched_tokens:
            command += ["--max-num-batched-tokens", str(args.max_num_batched_tokens)]
        if args.block_size:
            command += ["--block-size", str(args.block_size)]
        command += ["--enforce-eager"] if args.enforce_eager else []
        command.append(
            "--enable-prefix-caching"
            if args.enable_prefix_caching
            else "--no-enable-prefix-caching"
        )
        command.append(
            "--enable-chunked-prefill"
            if args.enable_chunked_prefill
            else "--no-enable-chunked-prefill"
        )
        # what a new user runs: request logs off is vLLM's default, stats logging off as ours
        return [*command, "--disable-log-stats", "--disable-uvicorn-access-log"]

    def environment(self) -> dict[str, str]:
        from serving.engine.vllm_engine import cpu_environment

        return cpu_environment(self.config)


def _relative(part: str) -> str:
    try:
        return str(Path(part).relative_to(REPO_ROOT))
    except ValueError:
        return part
