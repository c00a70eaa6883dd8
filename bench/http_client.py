"""A minimal HTTP/1.1 keep-alive client for load generation.

httpx spent ~3.5 ms of client CPU per request here (the load generator, not the gateway, was the
bottleneck at ~250 req/s); this does only what the benchmark needs: POST JSON, read a
Content-Length body.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}")

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self._writer.write(head + body)
        status_line = await self._reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


async def post_many(base_url: str, path: str, body: bytes | Sequence[bytes], n: int, connections: int) -> None:
    """POST `body` (or the bodies in turn) to `path` n times over `connections` keep-alive
    connections at once; every answer must be 202."""
    opened = [await Connection.open(base_url) for _ in range(connections)]
    bodies = [body] if isinstance(body, bytes) else list(body)
    sent = itertools.count()

    async def submitter(connection: Connection, count: int) -> None:
        for _ in range(count):
            status, answer = await connection.post_json(path, bodies[next(sent) % len(bodies)])
            if status != 202:
                raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")

    try:
        await asyncio.gather(*(submitter(c, n // connections + (i < n % connections)) for i, c in enumerate(opened)))
    finally:
        for connection in opened:
            await connection.close()
