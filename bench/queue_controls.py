"""What queue controls cost: the same burst of noop jobs with no controls, a concurrency limit, a
rate limit on their type — limits set high enough never to bind, so what is measured is the
mechanism (a `max_ack_pending` and type slots; a start token published per job) — and with
priorities 0-9 mixed (the processor picks among ten queues with no-wait pulls), and jobs with an
owner (each owner's lane is a queue of its own, taken in turn: one owner, then 20 owners mixed).

    python -m bench.queue_controls            # ~1 minute; results in docs/benchmarks.md ("Queue controls")
    python -m bench.queue_controls --smoke    # seconds (the test suite runs it so it cannot rot)

One system (processor and gateway as processes on an embedded nats-server). Each round submits N
noop jobs through `POST /api/jobs`, `concurrency` requests in flight, and ends when the job stream
has N terminal events; the settings alternate round by round. Reported: end-to-end jobs/s and the
processor's and nats-server's CPU per job (from /proc). Submissions go through bench.http_client
(httpx here costs more CPU per request than the gateway does, and would be what is measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import start_nats_server

from . import loop
from .end_to_end import timed
from .http_client import post_many
from .run import spawn, start_gateway, stop

SETTINGS: dict[str, dict[str, Any]] = {
    "no controls": {"concurrency": None, "rate_max": None},
    "concurrency limit (1,000, never reached)": {"concurrency": 1000, "rate_max": None},
    "rate limit (1,000,000/s, never reached)": {"concurrency": None, "rate_max": 1_000_000},
    "priorities 0-9, mixed": {"concurrency": None, "rate_max": None},
    "one owner (its lane)": {"concurrency": None, "rate_max": None},
    "20 owners, mixed (their lanes)": {"concurrency": None, "rate_max": None},
}
PLAIN = [b'{"type":"noop"}']
BODIES = {"priorities 0-9, mixed": [b'{"type":"noop","priority":%d}' % (i % 10) for i in range(10)],
          "one owner (its lane)": [b'{"type":"noop","owner":"tenant-a"}'],
          "20 owners, mixed (their lanes)": [b'{"type":"noop","owner":"tenant-%d"}' % i for i in range(20)]}


@dataclass
class Round:
    setting: str
    jobs_per_s: float
    processor_us: float  # CPU per job
    nats_us: float


async def burst(base: str, nc: nats.aio.client.Client, names: Names, n: int, concurrency: int,
                pids: dict[str, int], setting: str) -> Round:
    cpu: dict[str, list[float]] = {}
    bodies = BODIES.get(setting, PLAIN)
    rate = await timed(nc, names, n, lambda: post_many(base, "/api/jobs", bodies, n, concurrency), pids, cpu)
    return Round(setting, round(rate, 1), round(cpu["processor"][0]), round(cpu["nats-server"][0]))


async def main(args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        names = Names("bqueues")
        env = dict(os.environ, NATS_URL=server.url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=tmp,
                   JOBLINE_PORT="0", PYTHONUNBUFFERED="1", JOBLINE_HISTORY_START_WAIT_S="0")
        processor = await spawn([sys.executable, "-m", "jobline.processor"], env, b"processing")
        gateway, base = await start_gateway(env)
        nc = await nats.connect(server.url)
        pids = {"processor": processor.pid, "nats-server": server.process.pid}
        try:
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
                for _ in range(args.rounds):
                    for setting, controls in SETTINGS.items():
                        answer = await http.put("/api/queues/noop", json=controls)
                        answer.raise_for_status()
                        rounds.append(await burst(base, nc, names, args.jobs, args.concurrency, pids, setting))
        finally:
            await nc.close()
            for process in (gateway, processor):
                await stop(process)
            server.stop()
    return rounds


def table(rounds: list[Round]) -> str:
    lines = ["| setting | jobs/s | processor CPU µs/job | nats-server CPU µs/job |", "|---|---:|---:|---:|"]
    for name in SETTINGS:
        mine = [r for r in rounds if r.setting == name]
        lines.append(f"| {name} | {statistics.median(r.jobs_per_s for r in mine):,.0f} | "
                     f"{statistics.median(r.processor_us for r in mine):,.0f} | "
                     f"{statistics.median(r.nats_us for r in mine):,.0f} |")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.rounds, args.concurrency = 30, 1, 8
    rounds = loop.run(main(args))
    print(f"{args.jobs} noop jobs per round, {args.concurrency} submissions in flight, median of {args.rounds} rounds:\n")
    print(table(rounds))


if __name__ == "__main__":
    cli()
