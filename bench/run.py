"""Benchmarks, measured side by side in one run (see docs/benchmarks.md).

    make bench                      # full run (a few minutes)
    python -m bench.run --smoke     # seconds; what the test suite runs so this cannot rot

Systems: `raw` is the ceiling (raw nats-py: publish created → durable pull consumer → completed
event + ack → a watcher counts); `jobline` is the same noop jobs through POST /api/jobs on the real
gateway, processor and logsink processes, timed from the POST to the job's terminal event; the
peer is Celery 5 with Redis (broker and result backend), with task events off and on (`-E`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from jobline.contract.events import job_event_decoder
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import start_nats_server

from . import loop
from .celery_peer import bench_celery, redis_server
from .http_client import Connection

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
DOCS_PLOT = ROOT / "docs" / "benchmarks.png"
# Whether a source tree has the history service (an earlier version may not).
HAS_HISTORY = {None: (ROOT / "services" / "history").is_dir()}
HAS_CONDUCTOR = {None: (ROOT / "services" / "conductor").is_dir()}  # (versions before it ran its roles in the gateway)


@dataclass
class Result:
    system: str
    mode: str  # burst | paced
    jobs: int
    seconds: float
    jobs_per_s: float
    p50_ms: float
    p99_ms: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def summarise(system: str, mode: str, started: dict[str, float], ended: dict[str, float]) -> Result:
    latencies = [(ended[k] - started[k]) * 1000 for k in ended if k in started]
    span = max(ended.values()) - min(started.values())
    return Result(system, mode, len(ended), round(span, 3), round(len(ended) / span, 1),
                  round(percentile(latencies, 0.5), 2), round(percentile(latencies, 0.99), 2))


async def spawn(args: list[str], env: dict[str, str], ready: bytes) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(*args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    async with asyncio.timeout(60):
        async for line in process.stdout:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{args} exited before it was ready")

    async def drain() -> None:
        assert process.stdout is not None
        async for _ in process.stdout:
            pass

    asyncio.get_running_loop().create_task(drain())
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def run_load(submit, n: int, concurrency: int, rate: float | None, started: dict[str, float],
                   done: asyncio.Event) -> None:
    """Burst: `concurrency` submitters flat out. Paced: one submission every 1/rate seconds."""
    if rate is None:
        queue = iter(range(n))

        async def submitter() -> None:
            for i in queue:
                t0 = time.perf_counter()
                key = await submit(i)
                started[key] = t0

        await asyncio.gather(*(submitter() for _ in range(concurrency)))
    else:
        began = time.perf_counter()
        pending = set()
        for i in range(n):
            await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))  # pacing, not waiting on state

            async def one(i: int = i) -> None:
                t0 = time.perf_counter()
                started[await submit(i)] = t0

            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    await asyncio.wait_for(done.wait(), 120)


async def bench_raw(nc: Client, url: str, n: int, concurrency: int, rate: float | None, tag: str) -> Result:
    prefix = f"b{tag}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=f"{prefix.upper()}_RAW", subjects=[f"{prefix}.raw.>"], storage=StorageType.FILE))
    worker = await spawn([sys.executable, "-m", "bench.raw_worker", url, prefix], dict(os.environ), b"ready")
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    done = asyncio.Event()

    async def on_done(msg) -> None:
        ended[msg.subject.split(".")[2]] = time.perf_counter()
        if len(ended) == n:
            done.set()

    sub = await nc.subscribe(f"{prefix}.raw.*.done", cb=on_done)

    async def submit(i: int) -> str:
        key = f"j{i}"
        await js.publish(f"{prefix}.raw.{key}.created", b'{"type":"noop"}')
        return key

    try:
        await run_load(submit, n, concurrency, rate, started, done)
    finally:
        await sub.unsubscribe()
        await stop(worker)
    return summarise("raw nats-py", "burst" if rate is None else f"paced {rate:g}/s", started, ended)


JOBLINE = "jobline (HTTP → processor)"
JOBLINE_WATCHED = "jobline + progress + 1 SSE watcher per job"


async def watch_until_end(host: str, port: int, job_id: str) -> float:
    """A raw SSE client on the job's stream; when it saw the job's end (perf_counter)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {host}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        async for line in reader:
            if line.startswith(b"event: completed") or (line.startswith(b'data: {"job"')
                                                       and b'"status":"completed"' in line):
                return time.perf_counter()  # the end, live or (already over) in the snapshot
        raise RuntimeError(f"the stream of {job_id} closed before its end")
    finally:
        writer.close()


async def bench_jobline(nc: Client, url: str, n: int, concurrency: int, rate: float | None, data: Path, tag: str,
                        watched: bool = False, source: Path | None = None, job_type: str | None = None) -> Result:
    """noop jobs timed POST → terminal event; `watched`: jobs that also report progress, each
    followed by its own SSE client from its submission to its end (the end as that client sees it).
    `source`: a folder holding another `jobline` package to run the services from (bench.compare);
    `job_type`: jobs of that type instead (bench/tasks.py)."""
    names = Names(f"b{tag}")
    path = [str(ROOT)]
    env = dict(os.environ, NATS_URL=url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=str(data / tag),
               JOBLINE_PORT="0", JOBLINE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", JOBLINE_TASK_MODULES="bench.tasks",
               PYTHONPATH=os.pathsep.join(([str(source)] if source else []) + path))
    procs = [await spawn([sys.executable, "-m", "jobline.logsink"], env, b"logsink consuming"),
             await spawn([sys.executable, "-m", "jobline.processor"], env, b"processing")]
    if source not in HAS_HISTORY:
        HAS_HISTORY[source] = await asyncio.to_thread((source / "jobline" / "history").is_dir)
    if HAS_HISTORY[source]:
        # The whole system as `jobline up` runs it: the history service ingests every event too.
        procs.append(await spawn([sys.executable, "-m", "jobline.history"], env, b"history consuming"))
    if source not in HAS_CONDUCTOR:
        HAS_CONDUCTOR[source] = await asyncio.to_thread((source / "jobline" / "conductor").is_dir)
    if HAS_CONDUCTOR[source]:
        procs.append(await spawn([sys.executable, "-m", "jobline.conductor"], env, b"conductor running"))
    gateway, base = await start_gateway(env)
    procs.append(gateway)
    host, port = base.removeprefix("http://").split(":")
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    done = asyncio.Event()

    async def on_end(msg) -> None:
        ended[job_event_decoder.decode(msg.data).job_id] = time.perf_counter()
        if len(ended) == n:
            done.set()

    sub = None if watched else await nc.subscribe(names.all_job_ends, cb=on_end)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(await Connection.open(base))
    body = b'{"type":"%s"}' % (job_type or ("bench-progress" if watched else "noop")).encode()

    async def submit(i: int) -> str:
        connection = await pool.get()
        try:
            status, answer = await connection.post_json("/api/jobs", body)
        finally:
            pool.put_nowait(connection)
        if status != 202:
            raise RuntimeError(f"POST /api/jobs answered {status}: {answer[:200]!r}")
        job_id = str(json.loads(answer)["id"])
        if watched:
            ended[job_id] = await watch_until_end(host, int(port), job_id)
            if len(ended) == n:
                done.set()
        return job_id

    try:
        await run_load(submit, n, concurrency, rate, started, done)
    finally:
        if sub is not None:
            await sub.unsubscribe()
        while not pool.empty():
            await pool.get_nowait().close()
        for process in procs:
            await stop(process)
    return summarise(JOBLINE_WATCHED if watched else JOBLINE, "burst" if rate is None else f"paced {rate:g}/s",
                     started, ended)


async def start_gateway(env: dict[str, str], timeout: float = 60.0) -> tuple[asyncio.subprocess.Process, str]:
    """Start `python -m jobline.gateway`; returns it and its URL once it listens."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "jobline.gateway", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    base = ""
    async with asyncio.timeout(timeout):
        async for line in process.stdout:
            if b"gateway listening on " in line:
                base = line.decode().rsplit("gateway listening on ", 1)[1].strip()
                break

    async def drain() -> None:  # keep reading so the pipe never fills and blocks it
        assert process.stdout is not None
        async for _ in process.stdout:
            pass

    asyncio.get_running_loop().create_task(drain())
    return process, base


def table(results: list[Result]) -> str:
    lines = ["| system | mode | jobs | jobs/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.system} | {r.mode} | {r.jobs} | {r.jobs_per_s:,.0f} | {r.p50_ms} | {r.p99_ms} |")
    return "\n".join(lines)


CELERY = "celery + redis"
CELERY_EVENTS = "celery + redis, events on (-E)"


async def celery_result(redis_url: str, n: int, rate: float | None, events: bool) -> Result:
    started, ended = await bench_celery(redis_url, n, rate, events)
    return summarise(CELERY_EVENTS if events else CELERY, "burst" if rate is None else f"paced {rate:g}/s",
                     started, ended)


async def main(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        server = start_nats_server(Path(tmp) / "nats")
        nc = await nats.connect(server.url)
        results: list[Result] = []
        try:
            for rnd in range(args.rounds):
                # Side by side, alternating, so drift on a noisy machine hits every system alike.
                results.append(await bench_raw(nc, server.url, args.jobs, args.concurrency, None, f"r{rnd}b"))
                results.append(await bench_jobline(nc, server.url, args.jobs, args.concurrency, None, Path(tmp), f"j{rnd}b"))
                results.append(await bench_jobline(nc, server.url, args.jobs, args.concurrency, None, Path(tmp), f"w{rnd}b",
                                                   watched=True))
                results.append(await celery_result(redis_url, args.jobs, None, events=False))
                results.append(await celery_result(redis_url, args.jobs, None, events=True))
            results.append(await bench_raw(nc, server.url, args.paced_jobs, args.concurrency, args.rate, "rp"))
            results.append(await bench_jobline(nc, server.url, args.paced_jobs, args.concurrency, args.rate, Path(tmp), "jp"))
            results.append(await bench_jobline(nc, server.url, args.paced_jobs, args.concurrency, args.rate, Path(tmp), "wp",
                                               watched=True))
            results.append(await celery_result(redis_url, args.paced_jobs, args.rate, events=False))
            results.append(await celery_result(redis_url, args.paced_jobs, args.rate, events=True))
        finally:
            await nc.close()
            server.stop()
    return results


def medians(results: list[Result]) -> list[Result]:
    by_key: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        by_key.setdefault((r.system, r.mode), []).append(r)
    out = []
    for (system, mode), rs in by_key.items():
        out.append(Result(system, mode, rs[0].jobs, round(statistics.median(r.seconds for r in rs), 3),
                          round(statistics.median(r.jobs_per_s for r in rs), 1),
                          round(statistics.median(r.p50_ms for r in rs), 2), round(statistics.median(r.p99_ms for r in rs), 2)))
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per burst run")
    parser.add_argument("--rounds", type=int, default=3, help="burst runs per system (the median is reported)")
    parser.add_argument("--concurrency", type=int, default=64, help="submissions in flight in a burst")
    parser.add_argument("--rate", type=float, default=100.0, help="submissions per second in the paced run")
    parser.add_argument("--paced-jobs", type=int, default=1000, help="jobs in the paced run")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the suite works")
    parser.add_argument("--plot", help=f"where to write the PNG plot (default: {DOCS_PLOT.name} in docs/, none with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.rounds, args.paced_jobs, args.rate = 50, 1, 20, 200.0
    results = medians(loop.run(main(args)))

    def pick(system: str, burst: bool) -> Result:
        return next(r for r in results if r.system.startswith(system) and (r.mode == "burst") == burst)

    raw_burst, jl_burst, celery_burst = pick("raw", True), pick(JOBLINE, True), pick(CELERY, True)
    raw_paced, jl_paced = pick("raw", False), pick(JOBLINE, False)
    print(table(results))
    print(f"\njobline / raw throughput: {jl_burst.jobs_per_s / raw_burst.jobs_per_s:.0%}")
    print(f"jobline / celery throughput: {jl_burst.jobs_per_s / celery_burst.jobs_per_s:.1f}x")
    print(f"jobline / raw paced p50 latency: {jl_paced.p50_ms / raw_paced.p50_ms:.1f}x")
    plot_path = Path(args.plot) if args.plot else (None if args.smoke else DOCS_PLOT)
    if plot_path is not None:
        from .plot import plot

        plot(results, plot_path)
        print(f"plot written to {plot_path}")
    if not args.smoke:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "args": vars(args),
                                   "results": [asdict(r) for r in results]}, indent=2))
        print(f"\nresults written to {out}")


if __name__ == "__main__":
    cli()
