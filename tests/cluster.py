"""A real 3-node NATS cluster on loopback: routes between the nodes, JetStream on disk per node."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError

from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

from .processes import free_port


@dataclass
class Node:
    name: str
    client_port: int
    cluster_port: int
    store: Path
    server: EmbeddedNats | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


@dataclass
class Cluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start_node(self, node: Node) -> None:
        routes = ",".join(f"nats://127.0.0.1:{other.cluster_port}" for other in self.nodes if other is not node)
        # Same ports and store on a restart: the node rejoins with its data, clients find it again.
        node.server = start_nats_server(
            node.store, port=node.client_port, log_file=self.root / f"{node.name}.log",
            extra_args=["--name", node.name, "--cluster_name", "jobline-test",
                        "--cluster", f"nats://127.0.0.1:{node.cluster_port}", "--routes", routes])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> Node:
        node = self.node(name)
        assert node.server is not None
        node.server.process.send_signal(sig)
        node.server.process.wait(15)
        node.server = None
        return node

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def stop(self) -> None:
        for node in self.nodes:
            if node.server is not None:
                node.server.stop()
                node.server = None

    def log_of(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def running_cluster(root: Path, size: int = 3) -> Iterator[Cluster]:
    cluster = Cluster(root)
    for i in range(1, size + 1):
        cluster.nodes.append(Node(f"n{i}", free_port(), free_port(), root / f"n{i}"))
    try:
        for node in cluster.nodes:
            cluster.start_node(node)
        yield cluster
    finally:
        cluster.stop()


async def connect_to(cluster: Cluster) -> Client:
    return await nats.connect(servers=cluster.urls, connect_timeout=5, max_reconnect_attempts=-1,
                              reconnect_time_wait=0.2, name="test")


async def wait_for_jetstream(nc: Client, timeout: float = 30.0) -> None:
    """Until the cluster has elected its JetStream meta leader (it answers account info)."""
    js = nc.jetstream()
    delay = 0.05
    async with asyncio.timeout(timeout):
        while True:
            try:
                await js.account_info()
                return
            except (ServiceUnavailableError, NoRespondersError, NatsTimeoutError):
                await asyncio.sleep(delay)  # backoff while the election runs; nothing announces it
                delay = min(delay * 2, 0.5)
