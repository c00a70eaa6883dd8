"""Celery + Redis, measured the way `bench.run` measures the others: a redis-server from Debian's
package on a loopback port, a Celery worker process (prefork, one child per core), N noop tasks in a
burst and paced; with task events on (`-E`, what Flower needs) as a second variant."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if not found:
        raise RuntimeError("redis-server not found: apt-get install redis-server (make bench does)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", folder, "--loglevel", "warning"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while True:  # redis-server prints nothing at loglevel warning: it is ready when it accepts
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def celery_worker(redis_url: str, events: bool) -> Iterator[None]:
    env = dict(os.environ, BENCH_REDIS_URL=redis_url)
    args = [sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "-P", "prefork",
            "-c", str(os.cpu_count() or 2), "-Q", "bench", "-l", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat"] + (["-E"] if events else [])
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    assert process.stdout is not None
    lines: list[bytes] = []
    for line in process.stdout:  # wait for "ready", bounded by the worker exiting
        lines.append(line)
        if b"ready." in line:
            break
    else:
        raise RuntimeError("celery worker exited:\n" + b"".join(lines[-30:]).decode(errors="replace"))
    def drain() -> None:  # keep reading so a full pipe never blocks the worker
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_celery(redis_url: str, n: int, rate: float | None) -> tuple[dict[str, float], dict[str, float]]:
    """(submitted at, finished at) per task, wall clock. Burst: submit all as fast as the client can;
    paced: one every 1/rate seconds. Runs in a thread (Celery's client is blocking)."""
    os.environ["BENCH_REDIS_URL"] = redis_url  # read when bench.celery_app is first imported
    from .celery_app import noop
    from .celery_app import redis_url as app_url

    assert app_url == redis_url, "one redis-server per benchmark run"
    started: dict[str, float] = {}
    results = []
    began = time.time()
    for i in range(n):
        if rate is not None:
            time.sleep(max(0.0, began + i / rate - time.time()))  # pacing, not waiting on state
        t0 = time.time()
        result = noop.apply_async()
        started[result.id] = t0
        results.append(result)
    ended = {r.id: float(r.get(timeout=120)) for r in results}
    return started, ended


async def bench_celery(redis_url: str, n: int, rate: float | None, events: bool) -> tuple[dict[str, float], dict[str, float]]:
    with celery_worker(redis_url, events):
        return await asyncio.to_thread(run_celery, redis_url, n, rate)
