"""The workers page's API on real processes: each processor announces itself (types, slots, the jobs it
runs), a drained one takes no new job but runs its own to the end while the other takes the queue,
it resumes on request, a `kill -9`ed one is shown gone within three beats, a clean stop leaves the
list; the queue says how many processors serve its type; the CLI lists and drains."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import eventually
from .processes import System

pytestmark = pytest.mark.slow
BEAT_S = 0.5
TASKS = '''
import asyncio, pathlib
from jobline.processor import JobContext
from jobline.processor.registry import task

@task("held")
async def held(ctx: JobContext) -> dict:
    release = pathlib.Path(ctx.params["release"])
    while not release.exists():  # the test releases it by writing the file
        await asyncio.sleep(0.02)
    return {"ok": True}

@task("quick")
async def quick(ctx: JobContext) -> dict:
    return {"ok": True}
'''


@pytest.fixture
async def system(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> AsyncIterator[System]:
    running = System(nats_server.url, names, tmp_path, task_modules={"workertasks": TASKS},
                     settings={"JOBLINE_WORKER_BEAT_S": str(BEAT_S), "JOBLINE_PROCESSOR_CONCURRENCY": "4"})
    try:
        await running.start_all(processors=2, logsink=False, conductors=0)
        yield running
    finally:
        await running.stop()


async def workers(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/api/workers")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def test_drain_resume_and_gone(system: System, tmp_path: Path) -> None:
    pids = {p.process.pid for p in system.processors}
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as http:
        async def both_up() -> bool:
            listed = await workers(http)
            return {w["pid"] for w in listed} == pids and all(w["state"] == "up" for w in listed)

        await eventually(both_up, what="both processors listed")
        for worker in await workers(http):
            assert {"held", "quick"} <= set(worker["types"])
            assert worker["slots"] == 4 and worker["free"] == 4 and worker["running"] == 0
            assert worker["instance"].startswith("processor@") and worker["version"]
        queue = (await http.get("/api/queues/quick")).json()
        assert queue["workers"] == 2

        release = tmp_path / "release"
        held = (await http.post("/api/jobs", json={"type": "held", "params": {"release": str(release)}})).json()["id"]

        async def running_held() -> bool:
            return any(held in w["jobs"] for w in await workers(http))

        await eventually(running_held, what="the held job listed as running")
        busy = next(w for w in await workers(http) if held in w["jobs"])
        other = next(w for w in await workers(http) if w["id"] != busy["id"])

        drained = await http.post(f"/api/workers/{busy['id']}/drain")
        assert drained.status_code == 200, drained.text
        assert drained.json()["state"] == "draining" and drained.json()["free"] == 0
        again = await http.post(f"/api/workers/{busy['id']}/drain")  # idempotent
        assert again.status_code == 200 and again.json()["state"] == "draining"

        # The drained processor takes nothing new: every quick job runs on the other one.
        quick = [(await http.post("/api/jobs", json={"type": "quick"})).json()["id"] for _ in range(12)]

        async def all_completed() -> bool:
            return all([(await job(http, j))["status"] == "completed" for j in quick])

        await eventually(all_completed, timeout=30, what="the quick jobs completed")
        for job_id in quick:
            events = (await http.get(f"/api/jobs/{job_id}/timeline")).json()["events"]
            started = [e["event"]["worker"] for e in events if e["event"]["kind"] == "started"]
            assert started == [other["instance"]], (job_id, started)
        assert (await job(http, held))["status"] == "running"  # its own job goes on

        release.write_text("go")

        async def drained_idle() -> bool:
            return (await http.get(f"/api/workers/{busy['id']}")).json()["state"] == "drained"

        await eventually(drained_idle, what="the drained processor idle")
        assert (await job(http, held))["status"] == "completed"

        resumed = await http.post(f"/api/workers/{busy['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "up"
        assert (await http.post("/api/workers/nobody-1/drain")).status_code == 404
        assert (await http.get("/api/workers/nobody-1")).status_code == 404

        # kill -9: shown gone within three beats; the queue counts one processor less.
        victim = system.by_pid(other["pid"])
        victim.send(signal.SIGKILL)
        await victim.process.wait()
        system.forget(victim)

        async def shown_gone() -> bool:
            listed = {w["id"]: w["state"] for w in await workers(http)}
            return listed.get(other["id"]) == "gone"

        await eventually(shown_gone, timeout=3 * BEAT_S + 5, what="the killed processor shown gone")
        assert (await http.get("/api/queues/quick")).json()["workers"] == 1
        assert (await http.post(f"/api/workers/{other['id']}/drain")).status_code == 404

        # A clean stop leaves the list at once.
        survivor = system.by_pid(busy["pid"])
        assert await survivor.stop() == 0
        system.forget(survivor)

        async def left() -> bool:
            return busy["id"] not in {w["id"] for w in await workers(http)}

        await eventually(left, what="the stopped processor gone from the list")


async def test_cli_lists_and_drains(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as http:
        async def both() -> bool:
            return len(await workers(http)) == 2

        await eventually(both, what="both processors listed")
        target = (await workers(http))[0]["id"]
    env = {**os.environ, "JOBLINE_URL": system.url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobline.cli.main", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    listed = await asyncio.to_thread(cli, "workers")
    assert listed.returncode == 0, listed.stderr
    assert target in listed.stdout and "up" in listed.stdout
    drained = await asyncio.to_thread(cli, "workers", "drain", target)
    assert drained.returncode == 0, drained.stderr
    assert "draining" in drained.stdout or "drained" in drained.stdout
    as_json = await asyncio.to_thread(cli, "workers", "--json")
    states = {w["id"]: w["state"] for w in json.loads(as_json.stdout)}
    assert states[target] == "drained"
    resumed = await asyncio.to_thread(cli, "workers", "resume", target)
    assert resumed.returncode == 0 and "up" in resumed.stdout
    missing = await asyncio.to_thread(cli, "workers", "drain", "nobody-1")
    assert missing.returncode != 0 and "nobody-1" in missing.stderr
