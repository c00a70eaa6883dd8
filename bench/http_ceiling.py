"""What the HTTP stack alone can do here: a bare Litestar app (one POST route validating the same
kind of body with msgspec and answering 202 with a small JSON) under uvicorn with the gateway's
server settings, loaded by the benchmark's own client. No NATS, no read model: the ceiling of
`POST /api/jobs` on this machine before Jobline does any work (docs/benchmarks.md).

    .venv/bin/python -m bench.http_ceiling [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

import msgspec

from . import loop
from .http_client import Connection


class Submission(msgspec.Struct):
    type: str
    params: dict[str, object] = {}


def serve(port: int) -> None:
    import uvicorn
    from litestar import Litestar, post

    @post("/api/jobs", status_code=202)
    async def submit(data: Submission) -> dict[str, str]:
        return {"id": "01j0000000000000000000000", "type": data.type, "status": "pending"}

    uvicorn.run(Litestar([submit], logging_config=None), host="127.0.0.1", port=port, log_config=None,
                access_log=False)


async def load(port: int, requests: int, concurrency: int) -> float:
    connections = [await Connection.open(f"http://127.0.0.1:{port}") for _ in range(concurrency)]
    todo = iter(range(requests))

    async def worker(connection: Connection) -> None:
        for _ in todo:
            status, _ = await connection.post_json("/api/jobs", b'{"type":"noop"}')
            assert status == 202, status

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - began
    for connection in connections:
        await connection.close()
    return requests / elapsed


async def main(args: argparse.Namespace) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.http_ceiling", "--serve", str(port))
    try:
        async with asyncio.timeout(30):
            while True:  # uvicorn without a log config prints nothing: ready when it accepts
                try:
                    (await Connection.open(f"http://127.0.0.1:{port}"))._writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        rates = [await load(port, args.requests, args.concurrency) for _ in range(3)]
        print({"bare_litestar_post_per_s": round(sorted(rates)[1]), "runs": [round(r) for r in rates]})
    finally:
        server.terminate()
        await server.wait()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        loop.run(main(args))


if __name__ == "__main__":
    cli()
