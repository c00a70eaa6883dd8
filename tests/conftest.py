"""Fixtures: a real nats-server for the session, a namespace per test, services run for real."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

from .helpers import Stack, running_stack
from .postgres import PostgresServer, new_database, postgres_server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    # Fails (never skips) when the nats-server binary is missing.
    server = start_nats_server(tmp_path_factory.mktemp("nats-store"), port=-1)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def names() -> Names:
    """Every test gets its own subjects, streams and buckets on the shared server."""
    return Names(f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, connect_timeout=5, name="test")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (each test gets its own database)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """The history database, on each backend in turn: the history tests run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'history.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return new_database(server.url)


@pytest.fixture
async def stack(request: pytest.FixtureRequest, nats_server: EmbeddedNats, names: Names, data_dir: Path,
                js: JetStreamContext) -> AsyncIterator[Stack]:
    """Gateway, processor, logsink and history as tasks in this loop: the test module's `STACK`
    dict (if any) holds its options for `running_stack` (registry, settings, which services)."""
    async with running_stack(nats_server.url, names, data_dir, js, **getattr(request.module, "STACK", {})) as running:
        yield running


@pytest.fixture
async def client(stack: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the module's `stack` fixture (the services it runs)."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        yield http
