"""Connecting to NATS the same way in every service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from typing import Any

import nats
from nats.aio.client import Client

from jobline.runtime.env import NatsCredentials

log = logging.getLogger(__name__)


def instance_name(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def credential_options(credentials: NatsCredentials) -> dict[str, Any]:
    """nats.connect() keyword arguments for a user/password, a .creds file and TLS."""
    options: dict[str, Any] = {}
    if credentials.user:
        options.update(user=credentials.user, password=credentials.password or "")
    if credentials.creds_file:
        options["user_credentials"] = credentials.creds_file
    if credentials.tls_ca_file or credentials.tls_cert_file:
        context = ssl.create_default_context(cafile=credentials.tls_ca_file)
        if credentials.tls_cert_file:
            context.load_cert_chain(credentials.tls_cert_file, credentials.tls_key_file)
        options["tls"] = context
    return options


async def connect(servers: list[str], name: str, credentials: NatsCredentials | None = None, *,
                  connect_timeout: float = 5.0) -> Client:
    """Connect with a bounded first attempt (nats-py otherwise blocks for minutes on a dead server)
    and reconnect forever afterwards."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        log.warning("disconnected from nats")

    async def on_reconnect() -> None:
        log.info("reconnected to nats at %s", nc.connected_url.netloc if nc.connected_url else "?")

    nc = await nats.connect(
        servers=servers,
        name=name,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **credential_options(credentials or NatsCredentials()),
    )
    log.info("connected to nats at %s as %s", nc.connected_url.netloc if nc.connected_url else servers, name)
    return nc


async def close_connection(nc: Client, timeout: float = 5.0) -> None:
    """Drain (deliver what is in flight, then close), but never wait forever: a subscription left
    behind by a cancelled request can hold nats-py's drain for its full timeout."""
    try:
        async with asyncio.timeout(timeout):
            await nc.drain()
    except Exception:  # timed out, or already closed: close without draining
        log.warning("draining the nats connection did not finish in %.0fs; closing it", timeout)
    finally:
        if not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()
