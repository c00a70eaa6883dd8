"""History benchmarks (docs/benchmarks.md, "History"): what a gateway's start costs against how
much history there is, how fast the history service ingests, and how fast lists and searches are
over a million jobs, on SQLite and on PostgreSQL.

1. The pipeline's peak event rate: a burst of noop jobs through the whole system (HTTP → processor,
   with the history service running), events stored per second.
2. For each size, jobs of a realistic shape (created, started, 3 steps, 20 progress events, 20 log
   lines, completed: 49 events) published into the job stream; the history service started over
   that backlog (its ingest rate, events/s), then gateways started over it: time to ready and RSS,
   this version's and (with --old) an earlier version's, which replays the whole stream.
3. For each backend, a million small jobs written through the history service's own fold
   (the bulk path: `Projection.apply_batch`, no NATS), the stream moved past them (as after
   retention), then a gateway's start and RSS, and list/search latency through the HTTP API.

    .venv/bin/python -m bench.history                        # the full run (~20 minutes)
    .venv/bin/python -m bench.history --old 067ad34          # also the version before history
    .venv/bin/python -m bench.history --smoke                # what the tests run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js import JetStreamContext

from jobline.contract.events import (
    JobCompleted,
    JobCreated,
    JobEvent,
    JobFailed,
    JobStarted,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
    encoder,
)
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.contract.streams import RetentionSettings
from jobline.runtime.embedded_nats import start_nats_server
from jobline.runtime.stream_setup import ensure_streams

from . import loop
from .compare import source_tree
from .run import bench_jobline, spawn, start_gateway, stop
from .streams import rss_kb

ROOT = Path(__file__).resolve().parents[1]
BIG_STREAM = 4 << 30  # JetStream reserves it per stream: the 100,000-job run needs ~1.1 GB
STEPS = ["Upload", "Transcode", "Package"]


def realistic_job(job_id: str, at: float) -> list[JobEvent]:
    """49 events, ~10 KB in the stream: what a video job reports."""
    events: list[JobEvent] = [
        JobCreated(ts=at, job_id=job_id, type="video-transcode", steps=STEPS,
                   params={"upload": job_id.upper(), "height": 720, "preset": "fast", "title": "A holiday clip " * 4}),
        JobStarted(ts=at + 0.1, job_id=job_id, attempt=1, worker="processor@bench:1", steps=STEPS)]
    t = at + 0.1
    done = 0
    for index, step in enumerate(STEPS):
        events.append(StepStarted(ts=t, job_id=job_id, attempt=1, name=step))
        for tick in range(7 if index < 2 else 6):
            t += 0.05
            done += 1
            events.append(ProgressReported(ts=t, job_id=job_id, attempt=1, fraction=done / 20, current=done, total=20,
                                           message=f"{step} {tick + 1}", eta_s=(20 - done) * 0.05))
            events.append(LogLineWritten(ts=t, job_id=job_id, attempt=1, level="info",
                                         message=f"{step}: frame {tick * 250} of 5000 encoded at 48 fps, speed 1.9x"))
        events.append(StepFinished(ts=t, job_id=job_id, attempt=1, name=step, duration_s=0.35))
    events.append(JobCompleted(ts=t + 0.01, job_id=job_id, attempt=1,
                               result={"video": "video.mp4", "height": 720, "bytes": 1_234_567}))
    return events


def small_job(i: int, at: float) -> list[JobEvent]:
    """3 events: created, started, and completed (1 in 100 failed)."""
    job_id = f"s{i:08d}"
    job_type = f"type-{i % 5}"
    events: list[JobEvent] = [
        JobCreated(ts=at, job_id=job_id, type=job_type, params={"n": i, "height": (240, 480, 720)[i % 3]}),
        JobStarted(ts=at + 0.5, job_id=job_id, attempt=1, worker="bench")]
    if i % 100 == 7:
        events.append(JobFailed(ts=at + 2.0, job_id=job_id, attempt=1, error=f"encoder crashed on frame {i % 997}"))
    else:
        events.append(JobCompleted(ts=at + 1.0 + (i % 40) * 0.1, job_id=job_id, attempt=1, result={"ok": True, "n": i}))
    return events


async def publish_jobs(js: JetStreamContext, names: Names, jobs: Iterator[list[JobEvent]], window: int = 4000) -> int:
    """Publish with `window` acks in flight; returns the last sequence."""
    pending: list[Any] = []
    last = 0
    for events in jobs:
        for event in events:
            pending.append(await js.publish_async(subject_of(names, event), encoder.encode(event)))
        if len(pending) >= window:
            last = max(last, *(ack.seq for ack in await asyncio.gather(*pending)))
            pending.clear()
    if pending:
        last = max(last, *(ack.seq for ack in await asyncio.gather(*pending)))
    return last


def service_env(url: str, names: Names, data: Path, source: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLINE_", "NATS_"))}
    env.update(NATS_URL=url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=str(data), JOBLINE_PORT="0",
               JOBLINE_OPS_PORT="0", JOBLINE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
               JOBLINE_JOBS_MAX_BYTES=str(BIG_STREAM), JOBLINE_HISTORY_START_WAIT_S="10",
               PYTHONPATH=os.pathsep.join(([str(source)] if source else []) + [str(ROOT)]))
    env.update(extra)
    return env


async def applied(nc: nats.aio.client.Client, names: Names, min_seq: int = 0) -> int:
    try:
        reply = await nc.request(names.history_rpc("status"), json.dumps({"min_seq": min_seq}).encode(), timeout=5)
    except Exception:
        await asyncio.sleep(0.2)  # not up yet: ask again a moment later
        return -1
    data = json.loads(reply.data or b"{}")
    return int(data.get("applied_seq", -1))


async def until_applied(nc: nats.aio.client.Client, names: Names, last: int, timeout: float = 3600) -> float:
    """Seconds until the history service has applied `last`: its status request with `min_seq`
    answers once it has (or after its bounded wait, when it is asked again)."""
    began = time.perf_counter()
    async with asyncio.timeout(timeout):
        while await applied(nc, names, min_seq=last) < last:
            pass
    return time.perf_counter() - began


async def gateway_start(env: dict[str, str], runs: int) -> dict[str, float]:
    """Median time from starting the gateway process to it listening (it listens once ready),
    and its RSS then."""
    times, rss = [], []
    for _ in range(runs):
        began = time.perf_counter()
        process, _ = await start_gateway(env, timeout=900)
        times.append(time.perf_counter() - began)
        await asyncio.sleep(1)  # let what start-up allocated settle before reading RSS
        rss.append(rss_kb(process.pid) / 1024)
        await stop(process)
    return {"ready_s": round(statistics.median(times), 2), "rss_mb": round(statistics.median(rss))}


# --- 1. the pipeline's peak event rate -----------------------------------------------------------
async def peak_event_rate(nc: nats.aio.client.Client, url: str, data: Path, jobs: int) -> dict[str, Any]:
    result = await bench_jobline(nc, url, jobs, 64, None, data, "peak")
    info = await nc.jetstream().stream_info(Names("bpeak").jobs_stream)
    per_job = info.state.messages / jobs
    return {"part": "pipeline peak", "jobs": jobs, "jobs_per_s": round(result.jobs_per_s),
            "events_per_job": round(per_job, 2), "events_per_s": round(result.jobs_per_s * per_job)}


# --- 2. realistic history: ingest and gateway start -----------------------------------------------
async def realistic(nc: nats.aio.client.Client, url: str, data: Path, size: int, runs: int, old: Path | None,
                    postgres_url: str | None) -> list[dict[str, Any]]:
    names = Names(f"hr{size}")
    js = nc.jetstream()
    await ensure_streams(js, names, RetentionSettings(jobs_max_bytes=BIG_STREAM))
    now = time.time() - size * 0.5
    began = time.perf_counter()
    last = await publish_jobs(js, names, (realistic_job(f"r{i:08d}", now + i * 0.5) for i in range(size)))
    info = await js.stream_info(names.jobs_stream)
    out: list[dict[str, Any]] = []
    published = {"part": "realistic history", "jobs": size, "events": last, "stream_mb": round(info.state.bytes / 1e6),
                 "publish_s": round(time.perf_counter() - began, 1)}
    folder = data / names.namespace
    for backend, database in (("sqlite", ""), ("postgresql", postgres_url)):
        if database is None:
            continue
        env = service_env(url, names, folder, JOBLINE_DATABASE_URL=database or "")
        history = await spawn([sys.executable, "-m", "jobline.history"], env, b"history consuming")
        try:
            seconds = await until_applied(nc, names, last)
            out.append({**published, "backend": backend, "ingest_events_per_s": round(last / seconds)})
            if backend == "sqlite":  # the gateways, over the SQLite history
                out[-1]["gateway"] = await gateway_start(env, runs)
                if old is not None:
                    out[-1]["gateway_before_history"] = await gateway_start(
                        service_env(url, names, folder, source=old), max(1, runs // 3))
        finally:
            await stop(history)
        print(out[-1], flush=True)
    for stream in (names.jobs_stream, names.logs_stream):  # give the disk reservation back
        await js.delete_stream(stream)
    return out


# --- 3. a million small jobs: the bulk path, start, list and search --------------------------------
def bulk_fill(database_url: str, jobs: int, batch: int = 6000) -> tuple[int, float]:
    """The history database filled through the service's own fold, without NATS; (last seq, s)."""
    from jobline.history.database import Database
    from jobline.history.migrations import migrate
    from jobline.history.projection import Delivered, Projection

    db = Database(database_url)
    conn = db.connect()
    names = Names("bulk")
    try:
        migrate(db, conn)
        projection = Projection(db)
        projection.open(conn)
        week = 7 * 86400
        start = time.time() - week
        seq = projection.applied_seq
        began = time.perf_counter()
        messages: list[Delivered] = []
        for i in range(jobs):
            at = start + week * i / jobs
            for event in small_job(i, at):
                seq += 1
                messages.append(Delivered(seq, subject_of(names, event), encoder.encode(event), event.ts))
            if len(messages) >= batch:
                projection.apply_batch(conn, messages)
                messages = []
        if messages:
            projection.apply_batch(conn, messages)
        if db.backend == "postgresql":
            conn.execute("ANALYZE")
        else:
            conn.execute("ANALYZE")
        return seq, time.perf_counter() - began
    finally:
        conn.close()


QUERIES = {
    "list newest 50": {},
    "list, 100 pages deep": "deep",
    "status=failed": {"status": "failed"},
    "type=type-3": {"type": "type-3"},
    "type + status": {"type": "type-2", "status": "completed"},
    "created in one hour, 3 days ago": "hour",
    "params.height=480 (a third of all)": {"params.height": "480"},
    "params.n=<one job>": "field",
    "error contains text": {"error": "frame 99"},
    "finished since 1 h": "finished",
    "counts per status and type": "/api/stats/counts",
    "activity, a week": "/api/stats/activity?window=week",
}


async def latencies(base: str, jobs: int, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        page = (await client.get("/api/jobs", params={"limit": 50})).json()
        deep_cursor = page["next_before"]
        for _ in range(min(100, jobs // 100)):
            page = (await client.get("/api/jobs", params={"limit": 50, "before": deep_cursor})).json()
            deep_cursor = page["next_before"]
        for name, query in QUERIES.items():
            samples = []
            for _ in range(repeat):
                if query == "deep":
                    path, params = "/api/jobs", {"limit": 50, "before": deep_cursor}
                elif query == "hour":
                    at = time.time() - 3 * 86400
                    path, params = "/api/jobs", {"created_after": at, "created_before": at + 3600}
                elif query == "field":
                    path, params = "/api/jobs", {"params.n": str(rng.randrange(jobs))}
                elif query == "finished":
                    path, params = "/api/jobs", {"finished_after": time.time() - 3600}
                elif isinstance(query, str):
                    path, params = query, {}
                else:
                    path, params = "/api/jobs", dict(query)
                t = time.perf_counter()
                response = await client.get(path, params=params)
                samples.append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:200]}")
            samples.sort()
            out[name] = {"p50_ms": round(statistics.median(samples), 1),
                         "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1)}
    return out


async def million(nc: nats.aio.client.Client, url: str, data: Path, jobs: int, runs: int, repeat: int,
                  backend: str, database_url: str) -> dict[str, Any]:
    names = Names(f"hm{backend[:2]}")
    js = nc.jetstream()
    await ensure_streams(js, names, RetentionSettings(jobs_max_bytes=1 << 30))
    last, seconds = await asyncio.to_thread(bulk_fill, database_url, jobs)
    await js.purge_stream(names.jobs_stream, seq=last + 1)  # the stream goes on after what the history holds
    env = service_env(url, names, data / names.namespace, JOBLINE_DATABASE_URL=database_url)
    history = await spawn([sys.executable, "-m", "jobline.history"], env, b"history consuming")
    try:
        result: dict[str, Any] = {"part": "a million small jobs", "backend": backend, "jobs": jobs, "events": last,
                                  "bulk_events_per_s": round(last / seconds), "gateway": await gateway_start(env, runs)}
        process, base = await start_gateway(env, timeout=300)
        try:
            result["queries"] = await latencies(base, jobs, repeat)
        finally:
            await stop(process)
    finally:
        await stop(history)
    print(result, flush=True)
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        if r["part"] == "pipeline peak":
            lines.append(f"pipeline peak: {r['jobs_per_s']:,} jobs/s × {r['events_per_job']} events = "
                         f"{r['events_per_s']:,} events/s")
    lines += ["", "| history | backend | events | stream MB | ingest events/s | gateway ready s | gateway RSS MB "
              "| before: ready s | before: RSS MB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r["part"] == "realistic history":
            gateway, old = r.get("gateway", {}), r.get("gateway_before_history", {})
            lines.append(f"| {r['jobs']:,} realistic jobs | {r['backend']} | {r['events']:,} | {r['stream_mb']:,} | "
                         f"{r['ingest_events_per_s']:,} | {gateway.get('ready_s', '')} | {gateway.get('rss_mb', '')} | "
                         f"{old.get('ready_s', '')} | {old.get('rss_mb', '')} |")
        elif r["part"] == "a million small jobs":
            lines.append(f"| {r['jobs']:,} small jobs (bulk path) | {r['backend']} | {r['events']:,} | 0 | "
                         f"{r['bulk_events_per_s']:,} (bulk) | {r['gateway']['ready_s']} | {r['gateway']['rss_mb']} | | |")
    million_runs = [r for r in results if r["part"] == "a million small jobs"]
    if million_runs:
        header = "| query | " + " | ".join(f"{r['backend']} p50 / p99 ms" for r in million_runs) + " |"
        lines += ["", header, "|---|" + "---:|" * len(million_runs)]
        for name in QUERIES:
            lines.append(f"| {name} | " + " | ".join(
                f"{r['queries'][name]['p50_ms']} / {r['queries'][name]['p99_ms']}" for r in million_runs) + " |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    from tests.postgres import new_database, postgres_server

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp)
        old = stack.enter_context(source_tree(args.old, data)) if args.old else None
        postgres = stack.enter_context(postgres_server()) if "postgresql" in args.backends else None
        server = start_nats_server(data / "nats")
        nc = await nats.connect(server.url)
        try:
            if "peak" in args.parts:
                results.append(await peak_event_rate(nc, server.url, data, args.peak_jobs))
                print(results[-1], flush=True)
            for size in args.sizes if "realistic" in args.parts else ():
                results += await realistic(nc, server.url, data, size, args.runs, old,
                                           new_database(postgres.url) if postgres else None)
            for backend in args.backends if "million" in args.parts else ():
                database = new_database(postgres.url) if backend == "postgresql" and postgres else \
                    f"sqlite:///{data / 'million' / 'history.sqlite3'}"
                results.append(await million(nc, server.url, data, args.million, args.runs, args.repeat, backend, database))
        finally:
            await nc.close()
            server.stop()
    print(markdown(results))
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="realistic jobs per run")
    parser.add_argument("--million", type=int, default=1_000_000, help="small jobs for the list/search runs")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--peak-jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="gateway starts per measurement (median)")
    parser.add_argument("--repeat", type=int, default=100, help="requests per query (p50, p99)")
    parser.add_argument("--old", help="a git revision whose gateway (before the history service) to start too")
    parser.add_argument("--tmp", help="folder for the data (default: the system's temporary folder)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--parts", nargs="+", choices=("peak", "realistic", "million"),
                        default=["peak", "realistic", "million"])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.million, args.peak_jobs, args.runs, args.repeat = [100], 3000, 100, 1, 3
    results = loop.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    cli()
