"""`jobline up` as a supervisor, and every service's answer to SIGTERM in every phase: real
processes, real signals, the way a terminal sends them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.cli.launcher import port_free
from jobline.contract.events import JobCreated, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server
from jobline.runtime.stream_setup import ensure_streams

from .helpers import TEST_RETENTION, eventually, read_sse, running_stack
from .oracle import check_timeline, read_timeline
from .processes import ServiceProcess, free_port, service_env

pytestmark = pytest.mark.slow
SLOW_DEMO = {"type": "demo", "params": {"steps": ["A", "B", "C"], "step_seconds": 1.5, "ticks_per_step": 3}}


def pids_of(data_dir: Path) -> list[int]:
    """Processes started for this data folder (they inherit JOBLINE_DATA_DIR)."""
    marker = f"JOBLINE_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def all_gone(data_dir: Path, timeout: float = 20) -> None:
    async def gone() -> bool:
        return not [pid for pid in pids_of(data_dir) if "zombie" not in cmdline(pid)]

    await eventually(gone, timeout, f"every process of {data_dir} to end")


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLINE_", "NATS_"))}
    env.update(JOBLINE_DATA_DIR=str(tmp_path / "data"), JOBLINE_PORT=str(free_port()),
               JOBLINE_NATS_PORT=str(free_port()), JOBLINE_OPS_PORT="0", PYTHONUNBUFFERED="1",
               JOBLINE_ACK_WAIT_S="3", JOBLINE_JOBS_MAX_BYTES=str(32 << 20), JOBLINE_LOGS_MAX_BYTES=str(32 << 20))
    return env


async def start_up(env: dict[str, str]) -> ServiceProcess:
    """`jobline up` in a process group of its own, as a shell runs a foreground job."""
    return await ServiceProcess.start("jobline up", [sys.executable, "-m", "jobline.cli.main", "up"], env)


def ctrl_c(process: ServiceProcess) -> None:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
    os.killpg(process.process.pid, signal.SIGINT)


@pytest.fixture
async def running_up(up_env: dict[str, str]) -> AsyncIterator[tuple[ServiceProcess, str]]:
    process = await start_up(up_env)
    try:
        url = (await process.wait_for_line(r"Jobline is running: open (http://\S+)/", timeout=90)).group(1)
        yield process, url
    finally:
        if process.process.returncode is None:
            ctrl_c(process)
            await process.stop(signal.SIGINT, timeout=40)
        await all_gone(Path(up_env["JOBLINE_DATA_DIR"]))


async def test_kill_9_of_the_processor_is_restarted_and_its_job_ends_once_as_attempt_2(
        running_up: tuple[ServiceProcess, str], up_env: dict[str, str]) -> None:
    launcher, url = running_up
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        job_id = (await client.post("/api/jobs", json=SLOW_DEMO)).json()["id"]

        async def running() -> bool:
            return (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "running"

        await eventually(running, 20, "the job to start")
        processor = [pid for pid in pids_of(Path(up_env["JOBLINE_DATA_DIR"])) if "jobline.processor" in cmdline(pid)]
        assert len(processor) == 1
        os.kill(processor[0], signal.SIGKILL)
        await launcher.wait_for_line(r"processor exited with code -9; starting it again")
        await launcher.wait_for_line(r"processor started again \(restart 1\)")
        events = await read_sse(client, f"/api/jobs/{job_id}/events", timeout=60)
        assert events[-1].event == "completed"
        state = (await client.get(f"/api/jobs/{job_id}")).json()
        assert state["attempt"] == 2
    import nats

    connection = await nats.connect(f"nats://127.0.0.1:{up_env['JOBLINE_NATS_PORT']}")
    try:
        timeline = await read_timeline(connection.jetstream(), Names(), job_id)
        check_timeline(timeline)
        assert [r.event.attempt for r in timeline if r.kind == "started"] == [1, 2]  # type: ignore[attr-defined]
    finally:
        await connection.close()


async def test_a_service_that_keeps_failing_at_start_is_reported_and_everything_stops(up_env: dict[str, str]) -> None:
    launcher = await start_up({**up_env, "JOBLINE_TASK_MODULES": "no_such_tasks_module"})
    try:
        async with asyncio.timeout(90):
            code = await launcher.process.wait()
        await launcher.wait_for_line(r"processor keeps failing at start")
        assert code == 1
        tries = [line for line in launcher.lines if "cannot import the task module 'no_such_tasks_module'" in line]
        assert len(tries) == 5, "\n".join(launcher.lines[-40:])  # one per try: its main ran once each time
    finally:
        await all_gone(Path(up_env["JOBLINE_DATA_DIR"]))


async def test_ctrl_c_during_start_up_stops_everything_within_seconds(up_env: dict[str, str]) -> None:
    launcher = await start_up(up_env)
    await launcher.wait_for_line(r"embedded nats-server at")
    began = time.monotonic()
    ctrl_c(launcher)
    async with asyncio.timeout(25):
        await launcher.process.wait()
    await all_gone(Path(up_env["JOBLINE_DATA_DIR"]))
    assert time.monotonic() - began < 25


async def test_ctrl_c_while_a_job_runs_drains_the_services_before_nats_stops(
        up_env: dict[str, str]) -> None:
    launcher = await start_up({**up_env, "JOBLINE_DRAIN_GRACE_S": "8"})
    try:
        url = (await launcher.wait_for_line(r"Jobline is running: open (http://\S+)/", timeout=90)).group(1)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            job = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 2, "ticks_per_step": 4}}
            job_id = (await client.post("/api/jobs", json=job)).json()["id"]

            async def running() -> bool:
                return (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "running"

            await eventually(running, 20, "the job to start")
        ctrl_c(launcher)
        async with asyncio.timeout(40):
            await launcher.process.wait()
        await launcher.wait_for_line(r"processor INFO .*processor stopped after 1 job")
        stopped = next(i for i, line in enumerate(launcher.lines) if "processor stopped after" in line)
        # NATS was still there while the processor drained: it finished the job and published its end.
        assert not [line for line in launcher.lines[:stopped] if "processor" in line and "disconnected from nats" in line]
    finally:
        if launcher.process.returncode is None:
            launcher.process.kill()
        await all_gone(Path(up_env["JOBLINE_DATA_DIR"]))


async def test_killing_the_launcher_leaves_no_process_behind(running_up: tuple[ServiceProcess, str],
                                                             up_env: dict[str, str]) -> None:
    launcher, _ = running_up
    assert len(pids_of(Path(up_env["JOBLINE_DATA_DIR"]))) >= 5  # itself, nats-server and four services
    launcher.process.kill()
    await launcher.process.wait()
    await all_gone(Path(up_env["JOBLINE_DATA_DIR"]))


def test_the_port_check_admits_a_port_left_in_time_wait() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the side that closes first keeps the port in TIME_WAIT
    server.close()
    client.close()
    with socket.socket() as plain:  # a bind without SO_REUSEADDR is refused...
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert port_free("127.0.0.1", port)  # ...but nats-server (and the check) can bind it


# --- SIGTERM in every phase of a service's start -------------------------------------------------------
@pytest.mark.parametrize("service", ["gateway", "processor", "conductor", "logsink", "history"])
async def test_sigterm_while_nats_is_unreachable_ends_the_service_at_once(service: str, tmp_path: Path,
                                                                           names: Names) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    process = await ServiceProcess.service(service, service_env(dead, names, tmp_path, JOBLINE_PORT="0"))
    await process.wait_for_line(r"nats error", timeout=20)  # it is trying to connect
    began = time.monotonic()
    await process.stop(signal.SIGTERM, timeout=10)
    assert time.monotonic() - began < 5, process.output()


@pytest.mark.parametrize("service", ["gateway", "processor", "conductor", "logsink", "history"])
async def test_sigterm_while_waiting_for_jetstream_ends_the_service_at_once(service: str, tmp_path: Path,
                                                                            names: Names) -> None:
    server = start_nats_server(tmp_path / "nats", extra_args=["-js=false"])
    try:
        process = await ServiceProcess.service(service, service_env(server.url, names, tmp_path, JOBLINE_PORT="0"))
        await process.wait_for_line(r"JetStream is not ready", timeout=20)
        began = time.monotonic()
        await process.stop(signal.SIGTERM, timeout=10)
        assert time.monotonic() - began < 5, process.output()
    finally:
        server.stop()


async def test_a_gateway_over_a_stream_that_dropped_every_event_by_age_is_ready_at_once(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext) -> None:
    retention = replace(TEST_RETENTION, jobs_max_age_s=1.0)
    await ensure_streams(js, names, retention)
    for i in range(5):
        event = JobCreated(ts=time.time(), job_id=f"aged{i}", type="ghost")
        await js.publish(subject_of(names, event), encoder.encode(event))

    async def emptied() -> bool:
        state = (await js.stream_info(names.jobs_stream)).state
        return state.messages == 0 and state.last_seq >= 5

    await eventually(emptied, 15, "the stream to drop every event by age")
    began = time.monotonic()
    async with running_stack(nats_server.url, names, data_dir, js, retention=retention, with_history=False) as stack:
        async with httpx.AsyncClient(base_url=stack.url) as client:
            assert (await client.get("/readyz")).status_code == 200
    assert time.monotonic() - began < 15
