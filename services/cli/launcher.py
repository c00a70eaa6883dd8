"""`jobline up`: the whole system on one machine, each service its own process.

Starts an embedded nats-server with JetStream on disk when NATS_URL is unset, then the gateway,
the processor and the logsink; prints the UI's address; on Ctrl-C or SIGTERM stops the services
first (they drain) and the server last.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from jobline.runtime import env
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

log = logging.getLogger("jobline.up")
SERVICES = ("logsink", "history", "processor", "gateway")
STOP_TIMEOUT_S = 20.0


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start_embedded(data_dir: Path) -> EmbeddedNats:
    port = env.env_int("JOBLINE_NATS_PORT", 4222)
    if not _port_free("127.0.0.1", port):
        log.warning("port %d is taken; the embedded nats-server picks a free one", port)
        port = -1
    return start_nats_server(data_dir / "nats", port=port, log_file=data_dir / "nats-server.log")


def _wait_ready(url: str, processes: dict[str, subprocess.Popen[bytes]], timeout: float = 60.0) -> bool:
    """Bounded readiness check of the gateway, giving up early if a service died."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes.values()):
                return False
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    return False


def up() -> int:
    logging.basicConfig(level=env.log_level(), format="%(asctime)s jobline %(levelname)s: %(message)s")
    data_dir = env.data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ, JOBLINE_DATA_DIR=str(data_dir))
    nats_server: EmbeddedNats | None = None
    if not os.environ.get("NATS_URL"):
        nats_server = _start_embedded(data_dir)
        child_env["NATS_URL"] = nats_server.url
        log.info("embedded nats-server at %s (JetStream store %s)", nats_server.url, nats_server.store_dir)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for service in SERVICES:
            # A session of their own: Ctrl-C reaches only this launcher, which stops them in order.
            processes[service] = subprocess.Popen([sys.executable, "-m", f"jobline.{service}"], env=child_env,
                                                  start_new_session=True)
        host = child_env.get("JOBLINE_HOST", "127.0.0.1")
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{child_env.get('JOBLINE_PORT', '8000')}"
        if _wait_ready(url, processes):
            print(f"\n  Jobline is running: open {url}/  (NATS at {child_env['NATS_URL']}; Ctrl-C stops)\n", flush=True)
        elif not stopping.is_set():
            log.error("the system did not become ready; stopping")
            code = 1
            stopping.set()
        while not stopping.wait(0.5):
            dead = [name for name, p in processes.items() if p.poll() is not None]
            if dead:
                log.error("%s exited unexpectedly; stopping everything", ", ".join(dead))
                code = 1
                break
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, process in processes.items():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                process.kill()
                process.wait()
        if nats_server is not None:
            nats_server.stop()
        log.info("stopped")
    return code
