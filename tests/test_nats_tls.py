"""Services reach a TLS-only nats-server with `tls://` URLs and NATS_TLS_CA_FILE (docs/deployment.md)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import nats
import pytest

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import start_nats_server

from .helpers import outcome, read_sse
from .processes import ServiceProcess, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl not found: apt-get install openssl (make test does)"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_every_service_works_over_tls_and_plain_connections_are_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = start_nats_server(tmp_path / "store", extra_args=["--tls", "--tlscert", str(cert), "--tlskey", str(key)])
    url = server.url.replace("nats://", "tls://")
    processes: list[ServiceProcess] = []
    try:
        with pytest.raises((nats.errors.Error, OSError)):  # a client without TLS gets nowhere
            await nats.connect(server.url.replace("tls://", "nats://"), connect_timeout=2, allow_reconnect=False,
                               max_reconnect_attempts=0)
        context = ssl.create_default_context(cafile=str(cert))
        nc = await nats.connect(url, tls=context, connect_timeout=5)
        await nc.close()
        env = service_env(url, Names(), tmp_path / "data", JOBLINE_PORT="0", NATS_TLS_CA_FILE=str(cert))
        for service in ("logsink", "processor", "gateway"):
            processes.append(await ServiceProcess.service(service, env))
        await processes[0].wait_for_line(r"logsink consuming")
        await processes[1].wait_for_line(r"processing ")
        base = await gateway_url(processes[2])
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            params = {"step_seconds": 0.1, "ticks_per_step": 1}
            job = (await client.post("/api/jobs", json={"type": "demo", "params": params})).json()
            assert outcome(await read_sse(client, f"/api/jobs/{job['id']}/events")) == "completed"
            assert (await client.get(f"/api/jobs/{job['id']}/logs")).json()["rows"]
    finally:
        await stop_all(processes)
        server.stop()
