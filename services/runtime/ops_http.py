"""`/metrics` (Prometheus), `/healthz` and `/readyz` for services that have no HTTP API of their own.

A few lines of asyncio: three fixed GET routes do not need a web framework in the processor and
the logsink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


async def _respond(writer: asyncio.StreamWriter, status: str, body: bytes, content_type: str) -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                 "Connection: close\r\n\r\n".encode() + body)
    await writer.drain()


@contextlib.asynccontextmanager
async def serve_ops(host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool],
                    before_scrape: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[int]:
    """Serve while the context is open; yields the bound port. A taken port falls back to a free one
    (several processors on one host), which the log names."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: not needed
            parts = request.decode(errors="replace").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            if parts[:1] != ["GET"]:
                await _respond(writer, "405 Method Not Allowed", b"", "text/plain")
            elif path == "/metrics":
                if before_scrape is not None:
                    with contextlib.suppress(Exception):
                        await before_scrape()
                await _respond(writer, "200 OK", generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                await _respond(writer, "200 OK", b'{"status":"ok"}', "application/json")
            elif path == "/readyz":
                ok = ready()
                await _respond(writer, "200 OK" if ok else "503 Service Unavailable",
                               b'{"status":"ready"}' if ok else b'{"status":"not ready"}', "application/json")
            else:
                await _respond(writer, "404 Not Found", b'{"status":404}', "application/json")
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, port)
    except OSError:
        log.warning("ops port %d is taken; using a free one", port)
        server = await asyncio.start_server(handle, host, 0)
    bound = int(server.sockets[0].getsockname()[1])
    log.info("metrics and health on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
