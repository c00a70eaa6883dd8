"""Batches against single submissions and the raw nats-py pipeline, end to end, side by side.

    python -m bench.batches            # ~1 minute; results in docs/benchmarks.md ("Batches")
    python -m bench.batches --smoke    # seconds (the test suite runs it so it cannot rot)

Each round runs, alternating: the raw nats-py pipeline (bench.run's: publish, a bare worker, a done
message), Jobline with one `POST /api/jobs` per job (64 in flight, bench.http_client), and Jobline
with `POST /api/batches` of 1,000 jobs each (two requests in flight). Every round is N noop jobs
timed from the first submission to the last job's end. The peer: BullMQ (Node, on Redis), one worker
process at concurrency 50 and a producer process using `add()` 64 at a time or `addBulk` of 1,000
(two in flight), when `make bench` has installed it (bench/bullmq; `--no-peer` skips it). Jobline runs whole (logsink, processor,
history, gateway as processes), as `jobline up` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nats

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import start_nats_server

from . import loop
from .celery_peer import redis_server
from .end_to_end import timed
from .http_client import post_many
from .run import ROOT, bench_raw, spawn, start_gateway, stop

BATCH = 1000
SINGLE, BATCHED, RAW = "jobline, one POST /api/jobs per job", "jobline, POST /api/batches of 1,000", "raw nats-py"
BULL_ADD, BULL_BULK = "BullMQ add() (64 in flight)", "BullMQ addBulk of 1,000"
PEER = ROOT / "bench" / "bullmq"


def bullmq_installed() -> bool:
    return (PEER / "node_modules" / "bullmq").is_dir() and shutil.which("node") is not None


async def bullmq_round(redis_port: int, mode: str, n: int, tag: str) -> float:
    """One BullMQ worker process (concurrency 50) and one producer process; jobs/s end to end."""
    queue = f"bench-{tag}"
    node = shutil.which("node") or "node"
    worker = await asyncio.create_subprocess_exec(node, "peer.mjs", "worker", str(redis_port), queue, str(n), cwd=PEER,
                                                  stdout=asyncio.subprocess.PIPE)
    assert worker.stdout is not None
    async with asyncio.timeout(30):
        assert (await worker.stdout.readline()).strip() == b"ready"
    producer = await asyncio.create_subprocess_exec(node, "peer.mjs", mode, str(redis_port), queue, str(n), cwd=PEER,
                                                    stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(300):
        out, _ = await producer.communicate()
        started = json.loads(out.splitlines()[0])["started_ms"]
        ended = json.loads(await worker.stdout.readline())["ended_ms"]
        await worker.wait()
    return n / ((ended - started) / 1000)


async def singles(base: str, n: int, concurrency: int) -> None:
    await post_many(base, "/api/jobs", b'{"type":"noop"}', n, concurrency)


async def batches(base: str, n: int, in_flight: int = 2) -> None:
    await post_many(base, "/api/batches", json.dumps({"jobs": [{"type": "noop"}] * BATCH}).encode(), n // BATCH,
                    in_flight)


async def main(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    rates: dict[str, list[float]] = {RAW: [], SINGLE: [], BATCHED: []}
    peer = bullmq_installed() and not args.no_peer
    if peer:
        rates.update({BULL_ADD: [], BULL_BULK: []})
    else:
        print("BullMQ peer skipped (make bench installs it: npm install in bench/bullmq)", file=sys.stderr)
    cpu: dict[str, dict[str, list[float]]] = {SINGLE: {}, BATCHED: {}}
    with tempfile.TemporaryDirectory() as tmp, (redis_server() if peer else contextlib.nullcontext("")) as redis_url:
        server = start_nats_server(Path(tmp) / "nats")
        names = Names("bbatch")
        env = dict(os.environ, NATS_URL=server.url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=tmp,
                   JOBLINE_PORT="0", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        procs = [await spawn([sys.executable, "-m", "jobline.logsink"], env, b"logsink consuming"),
                 await spawn([sys.executable, "-m", "jobline.processor"], env, b"processing"),
                 await spawn([sys.executable, "-m", "jobline.history"], env, b"history consuming")]
        gateway, base = await start_gateway(env)
        procs.append(gateway)
        nc = await nats.connect(server.url)
        pids = {name: p.pid for name, p in zip(("logsink", "processor", "history", "gateway"), procs, strict=True)}
        pids["nats-server"] = server.process.pid
        try:
            await timed(nc, names, 100, lambda: singles(base, 100, 8), pids, {})  # warm-up
            for rnd in range(args.rounds):
                raw = await bench_raw(nc, server.url, args.jobs, 64, None, f"raw{rnd}")
                rates[RAW].append(raw.jobs_per_s)
                rates[SINGLE].append(await timed(nc, names, args.jobs, lambda: singles(base, args.jobs, 64), pids,
                                                 cpu[SINGLE]))
                rates[BATCHED].append(await timed(nc, names, args.jobs, lambda: batches(base, args.jobs), pids,
                                                  cpu[BATCHED]))
                if peer:
                    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
                    rates[BULL_ADD].append(await bullmq_round(port, "add", args.jobs, f"a{rnd}"))
                    rates[BULL_BULK].append(await bullmq_round(port, "addBulk", args.jobs, f"b{rnd}"))
        finally:
            await nc.close()
            for process in procs:
                await stop(process)
            server.stop()
    return rates, cpu


def table(rates: dict[str, list[float]], cpu: dict[str, dict[str, list[float]]]) -> str:
    raw = statistics.median(rates[RAW])
    lines = ["| system | jobs/s (median) | of raw | rounds |", "|---|---:|---:|---|"]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {median / raw:.0%} | {', '.join(f'{v:,.0f}' for v in values)} |")
    processes = list(next(iter(cpu.values())))
    lines += ["", "| CPU µs per job | " + " | ".join(processes) + " | total |", "|---|" + "---:|" * (len(processes) + 1)]
    for name, per in cpu.items():
        medians = [statistics.median(per[p]) for p in processes]
        lines.append(f"| {name} | " + " | ".join(f"{m:,.0f}" for m in medians) + f" | {sum(medians):,.0f} |")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per round (a multiple of 1,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip BullMQ (needs Node and npm install in bench/bullmq)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.rounds = 1000, 1
    rates, cpu = loop.run(main(args))
    print(f"{args.jobs} noop jobs per round, end to end, median of {args.rounds} rounds:\n")
    print(table(rates, cpu))


if __name__ == "__main__":
    cli()
