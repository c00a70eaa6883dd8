"""What the Python client costs: submit + watch to the end, through `jobline.client` vs a raw loop.

    python -m bench.clients            # ~1 minute; results in docs/benchmarks.md ("Clients")
    python -m bench.clients --smoke    # seconds (the test suite runs it so it cannot rot)

One system (logsink, processor, history, gateway as processes on an embedded nats-server). Each
round runs, side by side and alternating, N `bench-progress` jobs `concurrency` at a time:
- `raw httpx`: `POST /api/jobs` with httpx, then the job's SSE stream read with httpx-sse until the
  terminal event — what a user writes by hand without resume or retries; once more with an
  `Idempotency-Key` on each submission (what makes a retry safe, and what the client always sends);
- `jobline.client`: `await jobline.submit(...)` then `await job.wait()` (typed events, the fold,
  resume bookkeeping, an Idempotency-Key on every submission).
Reported: jobs/s, the client process's CPU per job, and the gateway's CPU per job (from
/proc/<pid>/stat) — the watch path must cost the gateway no more than a plain SSE watcher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from jobline.client import AsyncClient
from jobline.contract.names import Names
from jobline.contract.vocabulary import TERMINAL_KINDS
from jobline.runtime.embedded_nats import start_nats_server

from . import loop
from .run import ROOT, spawn, start_gateway, stop

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@dataclass
class Round:
    client: str
    jobs: int
    jobs_per_s: float
    client_cpu_ms: float  # per job, this process
    gateway_cpu_ms: float  # per job, the gateway process


async def raw_job(http: httpx.AsyncClient, keyed: bool = False) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
    answer = await http.post("/api/jobs", json={"type": "bench-progress"}, headers=headers)
    job_id = answer.json()["id"]
    async with aconnect_sse(http, "GET", f"/api/jobs/{job_id}/events") as source:
        async for sse in source.aiter_sse():
            if sse.event in TERMINAL_KINDS or (sse.event == "snapshot" and json.loads(sse.data)["job"]["status"]
                                               in TERMINAL_KINDS):
                return


async def client_job(jobline: AsyncClient) -> None:
    job = await jobline.submit("bench-progress")
    await job.wait(timeout=60)


async def measure(name: str, run_one, n: int, concurrency: int, gateway_pid: int) -> Round:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await run_one()

    cpu0, gw0, t0 = time.process_time(), cpu_s(gateway_pid), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - t0
    return Round(name, n, round(n / elapsed, 1), round((time.process_time() - cpu0) * 1000 / n, 3),
                 round((cpu_s(gateway_pid) - gw0) * 1000 / n, 3))


async def main(args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        names = Names("bclients")
        env = dict(os.environ, NATS_URL=server.url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=tmp,
                   JOBLINE_PORT="0", PYTHONUNBUFFERED="1", JOBLINE_TASK_MODULES="bench.tasks",
                   PYTHONPATH=str(ROOT))
        procs = [await spawn([sys.executable, "-m", "jobline.logsink"], env, b"logsink consuming"),
                 await spawn([sys.executable, "-m", "jobline.processor"], env, b"processing"),
                 await spawn([sys.executable, "-m", "jobline.history"], env, b"history consuming")]
        gateway, base = await start_gateway(env)
        procs.append(gateway)
        try:
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http, \
                    AsyncClient(base, timeout_s=60) as jobline:
                await measure("warm-up", lambda: raw_job(http), 20, 4, gateway.pid)
                for _ in range(args.rounds):
                    rounds.append(await measure("raw httpx + httpx-sse", lambda: raw_job(http), args.jobs,
                                                args.concurrency, gateway.pid))
                    rounds.append(await measure("raw httpx + httpx-sse, with an Idempotency-Key",
                                                lambda: raw_job(http, keyed=True), args.jobs, args.concurrency,
                                                gateway.pid))
                    rounds.append(await measure("jobline.client (submit + wait)", lambda: client_job(jobline),
                                                args.jobs, args.concurrency, gateway.pid))
        finally:
            for process in procs:
                await stop(process)
            server.stop()
    return rounds


def table(rounds: list[Round]) -> str:
    lines = ["| client | jobs/s | client CPU ms/job | gateway CPU ms/job |", "|---|---:|---:|---:|"]
    for name in dict.fromkeys(r.client for r in rounds):
        mine = [r for r in rounds if r.client == name]
        lines.append(f"| {name} | {statistics.median(r.jobs_per_s for r in mine):,.0f} | "
                     f"{statistics.median(r.client_cpu_ms for r in mine):.2f} | "
                     f"{statistics.median(r.gateway_cpu_ms for r in mine):.2f} |")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.rounds, args.concurrency = 20, 1, 4
    rounds = loop.run(main(args))
    print(f"{args.jobs} jobs per round, {args.concurrency} at a time, median of {args.rounds} rounds:\n")
    print(table(rounds))


if __name__ == "__main__":
    cli()
