"""The whole path with every service as its own process, the way `make run` runs them."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import eventually, outcome, read_sse, wait_for_job_type
from .oracle import check_timeline, read_timeline
from .processes import ServiceProcess, free_port, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow


def exited_cleanly(name: str, code: int) -> None:
    assert code == 0, f"{name} exited with {code}"


async def test_demo_job_end_to_end_with_separate_processes(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext, nc: Client
) -> None:
    env = service_env(nats_server.url, names, tmp_path, JOBLINE_PORT="0")
    processes = [await ServiceProcess.service(s, env) for s in ("logsink", "processor", "gateway")]
    try:
        gateway = processes[2]
        url = await gateway_url(gateway)
        await wait_for_job_type(js, names, "demo")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            params = {"steps": ["Upload", "Processing", "Done"], "step_seconds": 0.2, "ticks_per_step": 5}
            response = await client.post("/api/jobs", json={"type": "demo", "params": params})
            assert response.status_code == 202
            job_id = response.json()["id"]
            events = await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)

            # What the SSE client saw.
            assert events[0].event == "snapshot"
            ids = [int(e.id or -1) for e in events]
            assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"
            kinds = [e.event for e in events]
            assert kinds.count("completed") + kinds.count("failed") == 1 and kinds[-1] == "completed"
            fractions = [json.loads(e.data)["fraction"] for e in events if e.event == "progressed"]
            assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
            snapshot = json.loads(events[0].data)["job"]
            started = [s["name"] for s in snapshot["steps"] if s["status"] != "pending"]
            started += [json.loads(e.data)["name"] for e in events if e.event == "step_started"]
            assert started == ["Upload", "Processing", "Done"]

            # What the stream holds agrees, and the logsink stored every log line, in order.
            timeline = await read_timeline(js, names, job_id)
            check_timeline(timeline)
            emitted = [r.event.message for r in timeline if r.kind == "logged"]  # type: ignore[union-attr]

            async def stored() -> list[str]:
                rows = (await client.get(f"/api/jobs/{job_id}/logs")).json()["rows"]
                return [row["message"] for row in rows]

            async def all_stored() -> bool:
                return len(await stored()) >= len(emitted)

            await eventually(all_stored, what="the logsink")
            assert await stored() == emitted

            # The services' own log records reach the logsink too (the backend's live log stream).
            reply = await nc.request(names.log_history_rpc, b'{"service":"processor"}', timeout=5)
            assert any("processing demo" in row["message"] for row in json.loads(reply.data)["rows"])
    finally:
        await stop_all(processes, check=exited_cleanly)


async def test_jobline_up_runs_everything_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """`make run` is `jobline up`: embedded NATS, three services, a URL; Ctrl-C stops all."""
    port = free_port()
    env = service_env("", Names(), tmp_path / "data", JOBLINE_PORT=str(port), JOBLINE_NATS_PORT=str(free_port()))
    del env["NATS_URL"]
    up = await ServiceProcess.start("jobline up", [sys.executable, "-m", "jobline.cli.main", "up"], env)
    try:
        url = (await up.wait_for_line(r"Jobline is running: open (http://\S+)/", timeout=60)).group(1)
        assert url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            params = {"step_seconds": 0.05, "ticks_per_step": 2}
            response = await client.post("/api/jobs", json={"type": "demo", "params": params})
            assert response.status_code == 202
            events = await read_sse(client, f"/api/jobs/{response.json()['id']}/events", timeout=30)
            assert outcome(events) == "completed"
        assert (tmp_path / "data" / "nats" / "jetstream").is_dir(), "JetStream stores on disk in the data folder"
    finally:
        code = await up.stop(signal.SIGINT, timeout=30)
    assert code == 0, up.output()
    assert "stopped" in up.lines[-1]


USER_MODULE = """
import msgspec
from jobline.processor import JobContext, task

class Greet(msgspec.Struct):
    name: str = "world"

@task("greet", params=Greet, steps=["Compose"])
async def greet(ctx: JobContext) -> dict:
    ctx.step("Compose"); ctx.log(f"greeting {ctx.params.name}"); ctx.progress(1, 1)
    return {"greeting": f"hello {ctx.params.name}"}
"""


async def test_a_job_type_from_the_users_own_module(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext
) -> None:
    (tmp_path / "mytasks.py").write_text(USER_MODULE)
    env = service_env(nats_server.url, names, tmp_path, JOBLINE_PORT="0", JOBLINE_TASK_MODULES="mytasks",
                      PYTHONPATH=str(tmp_path))
    processes = [await ServiceProcess.service(s, env) for s in ("processor", "gateway")]
    try:
        url = await gateway_url(processes[1])
        await wait_for_job_type(js, names, "greet")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            types = {t["name"]: t for t in (await client.get("/api/types")).json()}
            assert types["greet"]["params"] == {"name": "world"} and types["greet"]["steps"] == ["Compose"]
            response = await client.post("/api/jobs", json={"type": "greet", "params": {"name": "Ada"}})
            job_id = response.json()["id"]
            assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            assert (await client.get(f"/api/jobs/{job_id}")).json()["result"] == {"greeting": "hello Ada"}
    finally:
        await stop_all(processes, check=exited_cleanly)
