"""A Ray head node of our own on 127.0.0.1, for a server and a bulk job to share (the
benchmarks and the Ray integration tests start one).

``ray start --head --block`` runs in its own session: stopping it (SIGINT to its group)
stops exactly this cluster, never another user's on the same machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from serving.testing.process_group import stop_process_group

#: what a process connecting to the head needs: Ray turns "127.0.0.1" in an address into
#: the machine's routable IP unless it is told this is a one-machine cluster, and the
#: head runs without Ray's token authentication (a throwaway cluster of one machine)
LOOPBACK_CLIENT_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_ADDRESS": "",
    "RAY_AUTH_MODE": "disabled",
}


def free_port_range(size: int, attempts: int = 50) -> range:
    """``size`` consecutive ports of which the first few are free now (a Ray head takes
    its ports from the range as it starts)."""
    import random
    import socket

    for _ in range(attempts):
        base = random.randrange(20000, 60000 - size)
        try:
            for port in range(base, base + 10):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return range(base, base + size)
    raise RuntimeError(f"no free range of {size} ports found")


class RayHead:
    """A local head node: ``address`` is ``127.0.0.1:<gcs_port>``; ``ports`` is a range
    of at least 70 free ports (GCS, node manager, object manager, agents, workers)."""

    def __init__(
        self,
        name: str,
        ports: range,
        num_cpus: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        startup_limit_s: float = 120,
    ):
        if len(ports) < 70:
            raise ValueError("a Ray head needs a range of at least 70 ports")
        self.name = name
        self.ports = ports
        self.num_cpus = num_cpus
        self.startup_limit_s = startup_limit_s
        self.address = f"127.0.0.1:{ports[0]}"
        self.temp_dir = Path("/tmp") / f"ray-{name}"
        self.log_path = log_path
        #: environment of every process of the cluster (Ray Serve reads its settings here)
        self.env = env or {}
        self.process: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        p = self.ports
        ray = str(Path(sys.executable).with_name("ray"))
        return [
            ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={p[0]}", f"--ray-client-server-port={p[1]}",
            f"--node-manager-port={p[2]}", f"--object-manager-port={p[3]}",
            f"--dashboard-agent-listen-port={p[4]}", f"--dashboard-agent-grpc-port={p[5]}",
            f"--metrics-export-port={p[6]}", f"--runtime-env-agent-port={p[7]}",
            f"--min-worker-port={p[10]}", f"--max-worker-port={p[-1]}",
            f"--num-cpus={self.num_cpus}", "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
        ]  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> RayHead:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
        env["RAY_AUTH_MODE"] = "disabled"
        env.update(self.env)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_limit_s
        while "Ray runtime started" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        stop_process_group(self.process)

    def __exit__(self, *exc) -> None:
        self.stop()
