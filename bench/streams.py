"""Stream benchmarks on one gateway process (see docs/benchmarks.md).

    .venv/bin/python -m bench.streams                 # fan-out 1,000 and 5,000; replay; 100,000 jobs
    .venv/bin/python -m bench.streams --smoke         # seconds

- fan-out: one job's progress event → received by N idle SSE clients (published with its send
  time; latency = receive time − send time on the same clock), p50/p99 over every delivery, and the
  gateway's memory per connection (RSS growth / N);
- replay: events/s streaming a 100,000-event timeline (`?replay=` at top speed) and the timeline
  JSON endpoint;
- read model: gateway start-up (rebuild) time with 100,000 finished jobs in the stream, and the
  latency of `GET /api/jobs` pages at that size.
Events are published straight to the stream with the contract's types (no processor), so the
gateway alone is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext

from jobline.contract.events import JobCompleted, JobCreated, JobStarted, ProgressReported, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.contract.streams import RetentionSettings
from jobline.runtime.embedded_nats import start_nats_server
from jobline.runtime.stream_setup import ensure_streams

from . import loop
from .run import percentile, start_gateway


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def gateway_for(url: str, names: Names, data: Path) -> tuple[asyncio.subprocess.Process, str, float]:
    env = dict(os.environ, NATS_URL=url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=str(data),
               JOBLINE_PORT="0", JOBLINE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", JOBLINE_SSE_HEARTBEAT_S="60",
               JOBLINE_MAX_STREAMS_PER_CLIENT="100000")
    began = time.perf_counter()
    process, base = await start_gateway(env, timeout=600)
    started = time.perf_counter() - began
    return process, base, started


async def publish_job(js: JetStreamContext, names: Names, job_id: str, *, done: bool) -> None:
    created = JobCreated(ts=time.time(), job_id=job_id, type="bench", steps=[])
    await js.publish(subject_of(names, created), encoder.encode(created))
    started = JobStarted(ts=time.time(), job_id=job_id, attempt=1, worker="bench")
    await js.publish(subject_of(names, started), encoder.encode(started))
    if done:
        end = JobCompleted(ts=time.time(), job_id=job_id, attempt=1)
        await js.publish(subject_of(names, end), encoder.encode(end))


class SseClient(asyncio.Protocol):
    """A raw SSE reader: a protocol on one socket, no task, no HTTP library and no line loop, so
    that thousands of them cost this process little and the gateway is what is measured."""

    def __init__(self, expect: int):
        self.expect = expect
        self.latencies: list[float] = []
        self.ready = asyncio.Event()
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        data, self._tail = self._tail + data, b""
        if not self.ready.is_set() and b"event: snapshot" in data:
            self.ready.set()
        start = 0
        while (at := data.find(PROGRESS, start)) >= 0:
            value = data.find(MESSAGE, at)
            end = data.find(b'"', value + len(MESSAGE)) if value >= 0 else -1
            if end < 0:  # the frame continues in the next chunk
                self._tail = data[at:]
                break
            self.latencies.append(now - float(data[value + len(MESSAGE):end]))
            start = end
        if len(self.latencies) >= self.expect and not self.done.done():
            self.done.set_result(None)
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


PROGRESS, MESSAGE = b'"kind":"progressed"', b'"message":"'  # the benchmark's progress frames carry their send time


async def open_client(host: str, port: int, path: str, expect: int) -> SseClient:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: SseClient(expect), host, port)
    transport.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return client


async def fan_out(js: JetStreamContext, names: Names, host: str, port: int, gateway_pid: int, clients: int,
                  events: int) -> dict[str, float]:
    job_id = f"fan{clients}"
    await publish_job(js, names, job_id, done=False)
    before = rss_kb(gateway_pid)
    readers: list[SseClient] = []
    path = f"/api/jobs/{job_id}/events"
    for _ in range(0, clients, 200):  # connect in waves: the listen backlog is finite
        wave = await asyncio.gather(*(open_client(host, port, path, events) for _ in range(min(200, clients - len(readers)))))
        await asyncio.gather(*(r.ready.wait() for r in wave))
        readers.extend(wave)
    await asyncio.sleep(1.0)  # let the gateway settle before measuring its memory
    per_connection_kb = (rss_kb(gateway_pid) - before) / clients
    for i in range(events):
        progress = ProgressReported(ts=time.time(), job_id=job_id, attempt=1, fraction=(i + 1) / events,
                                    message=f"{time.time():.6f}")
        await js.publish(subject_of(names, progress), encoder.encode(progress))
        await asyncio.sleep(0.25)  # the pace of a real progress bar, not a flood
    await asyncio.wait_for(asyncio.gather(*(r.done for r in readers)), 120)
    latencies = [x * 1000 for r in readers for x in r.latencies]
    return {"clients": clients, "deliveries": len(latencies), "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "kb_per_connection": round(per_connection_kb, 1)}


async def replay(js: JetStreamContext, names: Names, host: str, port: int, events: int) -> dict[str, float]:
    job_id = "replay1"
    await publish_job(js, names, job_id, done=False)
    acks = []
    for i in range(events):
        progress = ProgressReported(ts=time.time(), job_id=job_id, attempt=1, fraction=i / events)
        acks.append(await js.publish_async(subject_of(names, progress), encoder.encode(progress)))
        if len(acks) >= 5000:
            await asyncio.gather(*acks)
            acks.clear()
    await asyncio.gather(*acks)
    end = JobCompleted(ts=time.time(), job_id=job_id, attempt=1)
    await js.publish(subject_of(names, end), encoder.encode(end))
    reader, writer = await asyncio.open_connection(host, port)
    began = time.perf_counter()
    writer.write(f"GET /api/jobs/{job_id}/events?replay=1000 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    count = 0
    tail = b""
    while True:  # counted per chunk, not per line: the client's own reading should not be the bound
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        data = tail + chunk
        count += data.count(b"\nevent: ") - tail.count(b"\nevent: ")
        if b"event: replay_end" in data:
            break
        tail = data[-32:]
    sse_s = time.perf_counter() - began
    writer.close()
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=120) as client:
        began = time.perf_counter()
        body = (await client.get(f"/api/jobs/{job_id}/timeline")).content
        json_s = time.perf_counter() - began
    return {"events": count, "sse_events_per_s": round(count / sse_s), "timeline_json_events_per_s": round(events / json_s),
            "timeline_json_mb": round(len(body) / 1e6, 1)}


async def read_model(js: JetStreamContext, url: str, names: Names, data: Path, jobs: int) -> dict[str, float]:
    await ensure_streams(js, names, RetentionSettings())
    acks = []
    for i in range(jobs):
        job_id = f"j{i:07d}"
        for event in (JobCreated(ts=time.time(), job_id=job_id, type="bench" if i % 2 else "other"),
                      JobCompleted(ts=time.time(), job_id=job_id, attempt=1)):
            acks.append(await js.publish_async(subject_of(names, event), encoder.encode(event)))
        if len(acks) >= 5000:
            await asyncio.gather(*acks)
            acks.clear()
    await asyncio.gather(*acks)
    process, base, started = await gateway_for(url, names, data)
    import httpx

    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            first: list[float] = []
            filtered: list[float] = []
            deep: list[float] = []
            cursor = None
            for _ in range(20):
                t = time.perf_counter()
                page = (await client.get("/api/jobs", params={"limit": 50})).json()
                first.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await client.get("/api/jobs", params={"limit": 50, "type": "bench"})
                filtered.append((time.perf_counter() - t) * 1000)
                cursor = cursor or page["next_before"]
            for _ in range(20):
                t = time.perf_counter()
                page = (await client.get("/api/jobs", params={"limit": 50, "before": cursor})).json()
                deep.append((time.perf_counter() - t) * 1000)
                cursor = page["next_before"] or cursor
        return {"jobs": jobs, "startup_s": round(started, 2), "rss_mb": round(rss_kb(process.pid) / 1024),
                "list_p50_ms": round(statistics.median(first), 2), "list_by_type_p50_ms": round(statistics.median(filtered), 2),
                "list_next_page_p50_ms": round(statistics.median(deep), 2)}
    finally:
        process.terminate()
        await process.wait()


async def main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # thousands of sockets, both sides
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        try:
            names = Names("bench")
            await ensure_streams(js, names, RetentionSettings())
            gateway, base, _ = await gateway_for(server.url, names, Path(tmp))
            host, port = base.removeprefix("http://").split(":")
            try:
                for clients in args.clients:
                    print(await fan_out(js, names, host, int(port), gateway.pid, clients, args.events), flush=True)
                print(await replay(js, names, host, int(port), args.replay_events), flush=True)
            finally:
                gateway.terminate()
                await gateway.wait()
            print(await read_model(js, server.url, Names("benchrm"), Path(tmp), args.jobs), flush=True)
        finally:
            await nc.close()
            server.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--events", type=int, default=20, help="progress events per fan-out run")
    parser.add_argument("--replay-events", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=100_000, help="finished jobs for the read-model run")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.events, args.replay_events, args.jobs = [20], 3, 500, 500
    loop.run(main(args))


if __name__ == "__main__":
    cli()
