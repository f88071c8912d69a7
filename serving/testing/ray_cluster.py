"""A multi-node Ray cluster on one machine, on loopback, for tests and benchmarks.

Every node is ``ray.cluster_utils.Cluster``'s: its own raylet, object store and workers,
so tasks spread over nodes as they would over machines. All of it listens on 127.0.0.1
and on ports from ``base_port`` up (so that two such clusters, or another user's, do not
collide). Ray turns a ``127.0.0.1`` address into the machine's outward IP before
connecting, which a sandbox may not route; with single-machine clusters switched on (the
setting Ray reads on macOS and Windows) it keeps loopback, in this process and in every
Ray process started from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: ports a node uses beyond the head's GCS: worker ports, then agents
PORTS_PER_NODE = 24
LOOPBACK = "127.0.0.1"


def keep_loopback() -> None:
    """Make Ray keep ``127.0.0.1`` addresses (here and in the processes it starts)."""
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray_constants.ENABLE_RAY_CLUSTER = False


def _node_ports(base_port: int, node: int) -> dict[str, int]:
    first = base_port + 1 + node * PORTS_PER_NODE
    return {
        "min_worker_port": first,
        "max_worker_port": first + PORTS_PER_NODE - 6,
        "dashboard_agent_listen_port": first + PORTS_PER_NODE - 5,
        "metrics_export_port": first + PORTS_PER_NODE - 4,
        "runtime_env_agent_port": first + PORTS_PER_NODE - 3,
        "object_manager_port": first + PORTS_PER_NODE - 2,
        "node_manager_port": first + PORTS_PER_NODE - 1,
    }


@contextmanager
def loopback_cluster(nodes: int, cpus_per_node: int, base_port: int) -> Iterator[str]:
    """Start ``nodes`` nodes and connect this process; yields the GCS address."""
    import ray
    from ray.cluster_utils import Cluster

    keep_loopback()
    head = {
        "num_cpus": cpus_per_node,
        "node_ip_address": LOOPBACK,
        "gcs_server_port": base_port,
        "include_dashboard": False,
        "ray_client_server_port": base_port + 1 + nodes * PORTS_PER_NODE,
        **_node_ports(base_port, 0),
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for node in range(1, nodes):
            cluster.add_node(
                num_cpus=cpus_per_node, node_ip_address=LOOPBACK, **_node_ports(base_port, node)
            )
        ray.init(address=cluster.address, _node_ip_address=LOOPBACK, log_to_driver=False)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
