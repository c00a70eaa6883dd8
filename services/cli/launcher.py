"""`jobline up`: the whole system on one machine, each service its own process, supervised.

Starts an embedded nats-server with JetStream on disk when NATS_URL is unset, then the logsink, the
history service, the processor, the conductor and the gateway; prints the UI's address once the
gateway is ready.

- A service that dies is started again (with backoff, logged, counted), so a `kill -9` of the
  processor costs its running job one attempt, not the whole system. One that keeps dying right
  after its start (a typo in JOBLINE_TASK_MODULES, a bad setting) is reported and everything stops,
  after `MAX_QUICK_FAILURES` tries. The embedded nats-server is supervised the same way.
- Children run in sessions of their own, so the terminal's Ctrl-C reaches only this launcher,
  which stops the services first (SIGTERM: they drain) and the server last — at any moment, start-up
  included. A second Ctrl-C kills what is left. Each child is also told by the kernel to stop when
  the launcher dies (PR_SET_PDEATHSIG on Linux): killing the launcher leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx

from jobline.runtime import env
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

log = logging.getLogger("jobline.up")
SERVICES = ("logsink", "history", "processor", "conductor", "gateway")
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 120.0
QUICK_FAILURE_S = 10.0  # a service that dies sooner than this after its start failed at start
MAX_QUICK_FAILURES = 5
MAX_BACKOFF_S = 30.0


def die_with_parent() -> None:
    """In a child, before exec: stop (SIGTERM) when the launcher dies, in a session of its own."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_free(host: str, port: int) -> bool:
    """Whether nats-server could listen there. It sets SO_REUSEADDR, so a port left in TIME_WAIT by
    a server that just stopped is free for it: the check must do the same."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class Child:
    """A supervised service process."""

    name: str
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    next_start: float = 0.0
    history: list[int] = field(default_factory=list)  # exit codes seen

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, env=self.env, preexec_fn=die_with_parent)
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


class Launcher:
    def __init__(self) -> None:
        self.data_dir = env.data_dir()
        self.stopping = threading.Event()
        self.killing = False
        self.children: dict[str, Child] = {}
        self.nats: EmbeddedNats | None = None
        self.nats_port = env.env_int("JOBLINE_NATS_PORT", 4222)
        self.code = 0

    # --- signals ---------------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping.is_set():
            self.killing = True  # a second Ctrl-C: no more waiting
            log.warning("stopping now")
            self._kill_all()
        else:
            log.info("stopping (services first, then NATS; Ctrl-C again to kill)")
        self.stopping.set()

    # --- nats-server ---------------------------------------------------------------------------
    def start_nats(self) -> str:
        port = self.nats_port
        if not port_free("127.0.0.1", port):
            log.warning("port %d is taken; the embedded nats-server picks a free one", port)
            port = -1
        self.nats = start_nats_server(self.data_dir / "nats", port=port, log_file=self.data_dir / "nats-server.log",
                                      preexec_fn=die_with_parent)
        self.nats_port = int(self.nats.url.rsplit(":", 1)[1])  # a restart keeps the address the services know
        return self.nats.url

    def nats_died(self) -> bool:
        return self.nats is not None and self.nats.process.poll() is not None

    # --- services ---------------------------------------------------------------------------
    def supervise(self) -> bool:
        """Restart what died; False when one keeps failing at start (everything should stop)."""
        now = time.monotonic()
        if self.nats_died():
            assert self.nats is not None
            log.error("nats-server exited with code %s; starting it again (JetStream keeps its data)",
                      self.nats.process.returncode)
            self.start_nats()
        for child in self.children.values():
            code = child.exited()
            if code is None:
                if child.quick_failures and now - child.started_at > QUICK_FAILURE_S:
                    child.quick_failures = 0  # it stayed up: the earlier failures are forgiven
                continue
            if child.next_start == 0.0:  # just noticed
                child.history.append(code)
                quick = now - child.started_at < QUICK_FAILURE_S
                child.quick_failures = child.quick_failures + 1 if quick else 0
                if child.quick_failures >= MAX_QUICK_FAILURES:
                    log.error("%s keeps failing at start (exit codes %s, %d tries): see its log above; stopping "
                              "everything", child.name, child.history[-MAX_QUICK_FAILURES:], MAX_QUICK_FAILURES)
                    return False
                delay = min(2.0 ** max(child.quick_failures - 1, 0) * 0.5, MAX_BACKOFF_S) if quick else 0.5
                child.next_start = now + delay
                log.warning("%s exited with code %s; starting it again in %.1fs (restart %d)", child.name, code,
                            delay, child.restarts + 1)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
                log.info("%s started again (restart %d)", child.name, child.restarts)
        return True

    def _kill_all(self) -> None:
        for child in self.children.values():
            if child.exited() is None and child.process is not None:
                child.process.kill()
        if self.nats is not None and self.nats.process.poll() is None:
            self.nats.process.kill()

    def stop_all(self) -> None:
        """Services first (SIGTERM: they drain their work), the server last."""
        for child in self.children.values():
            if child.exited() is None and child.process is not None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
        if self.nats is not None:
            self.nats.stop()

    # --- the whole run -----------------------------------------------------------------------
    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        child_env = dict(os.environ, JOBLINE_DATA_DIR=str(self.data_dir))
        try:
            if not os.environ.get("NATS_URL"):
                child_env["NATS_URL"] = self.start_nats()
                log.info("embedded nats-server at %s (JetStream store %s)", child_env["NATS_URL"], self.data_dir / "nats")
            for name in SERVICES:
                if self.stopping.is_set():
                    break
                child = Child(name, [sys.executable, "-m", f"jobline.{name}"], child_env)
                child.start()
                self.children[name] = child
            host = child_env.get("JOBLINE_HOST", "127.0.0.1")
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{child_env.get('JOBLINE_PORT', '8000')}"
            self._until_ready_then_supervise(url, child_env["NATS_URL"])
        finally:
            if not self.killing:
                self.stop_all()
            restarts = {c.name: c.restarts for c in self.children.values() if c.restarts}
            log.info("stopped%s", f" (restarts: {', '.join(f'{n} {r}' for n, r in restarts.items())})" if restarts else "")
        return self.code

    def _until_ready_then_supervise(self, url: str, nats_url: str) -> None:
        ready = False
        began = time.monotonic()
        with httpx.Client(timeout=1.0) as client:
            while not self.stopping.wait(0.2):
                if not self.supervise():
                    self.code = 1
                    return
                if ready:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    ready = client.get(f"{url}/readyz").status_code == 200
                if ready:
                    print(f"\n  Jobline is running: open {url}/  (NATS at {nats_url}; Ctrl-C stops)\n", flush=True)
                elif time.monotonic() - began > READY_TIMEOUT_S:
                    log.error("the system did not become ready in %.0fs; stopping", READY_TIMEOUT_S)
                    self.code = 1
                    return


def up() -> int:
    logging.basicConfig(level=env.log_level(), format="%(asctime)s jobline %(levelname)s: %(message)s")
    return Launcher().run()

