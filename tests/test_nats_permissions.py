"""deploy/nats/auth.conf for real: each service connects as its own user, the whole system works,
and a service cannot publish or delete what it has no business with."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

from .helpers import eventually, outcome, read_sse
from .oracle import check_timeline, read_timeline
from .processes import ServiceProcess, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow

AUTH_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "auth.conf"
PASSWORDS = {service: f"{service}-secret-{os.getpid()}"
             for service in ("gateway", "processor", "conductor", "logsink", "history")}

TASKS = '''
from jobline.processor import JobContext, task

@task("copy-upload", description="Reads an upload, stores it back as an artifact.")
async def copy_upload(ctx: JobContext) -> dict:
    ctx.step("Copy")
    path = await ctx.fetch_upload(ctx.params["upload"])
    ctx.log(f"read {path.stat().st_size} bytes")
    ctx.progress(1, 1)
    await ctx.artifact("copy.txt", path, "text/plain")
    return {"bytes": path.stat().st_size}
'''


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    env = dict(os.environ, **{f"JOBLINE_{s.upper()}_NATS_PASSWORD": p for s, p in PASSWORDS.items()})
    server = start_nats_server(tmp_path / "store", extra_args=["-c", str(AUTH_CONF)], env=env,
                               log_file=tmp_path / "nats.log")
    try:
        yield server
    finally:
        server.stop()


class Violations:
    """A client that records the server's permission errors (they arrive asynchronously)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.errors.append(str(exc))


@pytest.fixture
async def as_user(secured_nats: EmbeddedNats) -> AsyncIterator[object]:
    clients: list[Client] = []

    async def connect(user: str) -> tuple[Client, Violations]:
        violations = Violations()
        nc = await nats.connect(secured_nats.url, user=user, password=PASSWORDS[user], error_cb=violations.record,
                                connect_timeout=5, allow_reconnect=False)
        clients.append(nc)
        return nc, violations

    try:
        yield connect
    finally:
        for nc in clients:
            await nc.close()


async def test_each_service_as_its_own_user_runs_the_whole_system(
    secured_nats: EmbeddedNats, as_user, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "permtasks.py").write_text(TASKS)
    names = Names()  # the config is written for the default namespace
    services: list[ServiceProcess] = []
    for service in ("logsink", "history", "processor", "conductor", "gateway"):
        # (the gateway with API tokens and a submit rate: it then counts owners' submissions on the broker)
        tokens = {"JOBLINE_API_TOKENS": "perm-admin", "JOBLINE_SUBMIT_RATE": "100"} if service == "gateway" else {}
        env = service_env(secured_nats.url, names, tmp_path / "data", JOBLINE_PORT="0", NATS_USER=service,
                          NATS_PASSWORD=PASSWORDS[service], JOBLINE_TASK_MODULES="permtasks", PYTHONPATH=str(tmp_path),
                          **tokens)
        services.append(await ServiceProcess.service(service, env))
    try:
        await services[0].wait_for_line(r"logsink consuming")
        await services[1].wait_for_line(r"history consuming")
        await services[2].wait_for_line(r"processing .*copy-upload")
        await services[3].wait_for_line(r"conductor running")
        url = await gateway_url(services[4])
        admin, _ = await as_user("gateway")  # reading needs no more than the gateway has
        js = admin.jetstream()
        async with httpx.AsyncClient(base_url=url, timeout=20, headers={"Authorization": "Bearer perm-admin"}) as client:
            minted = await client.post("/api/stream-tokens", json={"owner": "perm-user", "rights": ["submit"]})
            owned = await client.post("/api/jobs", params={"access_token": minted.json()["token"]},
                                      json={"type": "demo", "params": {"step_seconds": 0.01}}, headers={"Authorization": ""})
            assert owned.status_code == 202, owned.text  # (counted on `submits.<owner>` first)
            assert outcome(await read_sse(client, f"/api/jobs/{owned.json()['id']}/events")) == "completed"
            body = {"type": "demo", "params": {"step_seconds": 0.1, "ticks_per_step": 2}}
            demo = (await client.post("/api/jobs", json=body, headers={"Idempotency-Key": "k1"})).json()["id"]
            again = (await client.post("/api/jobs", json=body, headers={"Idempotency-Key": "k1"})).json()["id"]
            assert again == demo
            assert outcome(await read_sse(client, f"/api/jobs/{demo}/events")) == "completed"
            check_timeline(await read_timeline(js, names, demo))
            upload = (await client.post("/api/uploads", params={"filename": "in.txt"}, content=b"hello " * 1000)).json()
            copy = (await client.post("/api/jobs", json={"type": "copy-upload", "params": {"upload": upload["id"]}})).json()["id"]
            assert outcome(await read_sse(client, f"/api/jobs/{copy}/events")) == "completed"
            artifact = await client.get(f"/api/jobs/{copy}/artifacts/copy.txt")
            assert artifact.status_code == 200 and artifact.content == b"hello " * 1000
            slow = (await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 5}})).json()["id"]
            assert (await client.post(f"/api/jobs/{slow}/cancel")).status_code == 202
            assert outcome(await read_sse(client, f"/api/jobs/{slow}/events")) == "cancelled"
            # A delayed job (a message schedule the gateway may publish, and replace to cancel).
            later = (await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 0.05},
                                                          "delay_s": 1.5})).json()
            assert later["status"] == "scheduled"
            assert outcome(await read_sse(client, f"/api/jobs/{later['id']}/events")) == "completed"
            unwanted = (await client.post("/api/jobs", json={"type": "demo", "delay_s": 600})).json()["id"]
            assert (await client.post(f"/api/jobs/{unwanted}/cancel")).json()["status"] == "cancelled"
            logs = (await client.get(f"/api/jobs/{demo}/logs")).json()["rows"]
            assert [row["message"] for row in logs][:1] == ["Upload: started"]
            searched = (await client.get("/api/jobs", params={"status": "cancelled"})).json()  # the history service
            assert searched["partial"] is False and {job["id"] for job in searched["jobs"]} == {slow, unwanted}
            assert (await client.get("/api/stats/counts")).json()["by_status"]["completed"] == 4  # (with the owner's)
            assert (await client.get("/readyz")).status_code == 200
            # A recurring schedule: its definition in the schedules bucket, its wake-up a message schedule.
            made = await client.post("/api/schedules", json={"name": "perm", "cron": "* * * * * *",
                                                             "job": {"type": "demo", "params": {"step_seconds": 0.05}}})
            assert made.status_code == 201, made.text

            async def ticked() -> bool:
                return bool((await client.get("/api/schedules/perm")).json()["jobs_created"] >= 2)

            await eventually(ticked, timeout=15, what="two ticks of the schedule")
            paused = (await client.post("/api/schedules/perm/pause")).json()
            assert paused["paused"] is True
            assert (await client.delete("/api/schedules/perm")).status_code == 204
            for job_id in paused["recent_jobs"]:  # all of them ended before the stream is counted below
                assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            # Queue controls: the gateway pauses and limits a queue, the processor takes start tokens.
            assert (await client.post("/api/queues/demo/pause")).json()["paused"] is True
            assert (await client.post("/api/queues/demo/resume")).json()["paused"] is False
            limited = await client.put("/api/queues/demo", json={"concurrency": 4, "rate_max": 100})
            assert limited.status_code == 200, limited.text
            tokened = (await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 0.05}})).json()
            assert outcome(await read_sse(client, f"/api/jobs/{tokened['id']}/events")) == "completed"
            # Per-key slots (the processor's key_slots bucket) and the waiting event of the second job.
            await client.put("/api/queues/demo", json={"key_concurrency": 1})
            keyed = [(await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 0.2},
                                                           "concurrency_key": "k"})).json()["id"] for _ in range(2)]
            for job_id in keyed:
                assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            assert (await client.put("/api/queues/demo", json={"concurrency": None, "key_concurrency": None,
                                                               "rate_max": None})).status_code == 200
            # A job of a priority (its band's subject and queue), a batch (its bucket), a flow (blocked
            # jobs, the flow signals, its bucket).
            quick = {"type": "demo", "params": {"step_seconds": 0.05}}
            high = (await client.post("/api/jobs", json={**quick, "priority": 7})).json()["id"]
            assert outcome(await read_sse(client, f"/api/jobs/{high}/events")) == "completed"
            batch = await client.post("/api/batches", json={"jobs": [quick, quick]})
            assert batch.status_code == 202, batch.text
            flow = await client.post("/api/flows", json={"job": {"type": "gather"}, "children": [{"job": quick}]})
            assert flow.status_code == 202, flow.text
            for job_id in [*batch.json()["jobs"], flow.json()["id"]]:
                assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            # Owners' lanes (their subjects and queues), and jobs that wait for a signal: the processor hands
            # the wait's timeout to the broker, the gateway stores the signal, the conductor resumes the job.
            owned = [(await client.post("/api/jobs", json={**quick, "owner": owner, "priority": priority})).json()["id"]
                     for owner, priority in (("tenant-a", 0), ("tenant-b", 3))]
            reviews = [(await client.post("/api/jobs", json={"type": "review", "params": {
                "prepare_seconds": 0.05, "timeout_s": timeout}})).json()["id"] for timeout in (600, 1)]

            async def waiting() -> bool:
                return bool((await client.get(f"/api/jobs/{reviews[0]}")).json()["status"] == "waiting")

            await eventually(waiting, timeout=15, what="the review waits for its signal")
            sent = await client.post(f"/api/jobs/{reviews[0]}/signals/approval", json={"approved": True})
            assert sent.status_code == 202, sent.text
            for job_id in [*owned, reviews[0]]:
                assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            assert outcome(await read_sse(client, f"/api/jobs/{reviews[1]}/events")) == "failed"  # (timed out)
            # Deleting from history: one job by the gateway; stored bulk operations run by the conductor (a
            # cancel of a delayed job: its schedule replaced, the request, its end; a delete).
            assert (await client.delete(f"/api/jobs/{owned[0]}")).status_code == 204
            delayed = (await client.post("/api/jobs", json={"type": "demo", "delay_s": 600, "owner": "perm-op"})).json()
            async_ = {"Prefer": "respond-async"}
            bulk_cancel = await client.post("/api/jobs/cancel", params={"status": "scheduled", "owner": "perm-op"},
                                            headers=async_)
            assert bulk_cancel.status_code == 202, bulk_cancel.text
            final = (await read_sse(client, bulk_cancel.headers["location"] + "/events"))[-1]
            assert final.event == "done" and json.loads(final.data)["cancelled"] == 1, final
            assert outcome(await read_sse(client, f"/api/jobs/{delayed['id']}/events")) == "cancelled"
            bulk_delete = await client.post("/api/jobs/delete", params={"status": "cancelled", "owner": "perm-op"},
                                            headers=async_)
            final = (await read_sse(client, bulk_delete.headers["location"] + "/events"))[-1]
            assert final.event == "done" and json.loads(final.data)["deleted"] == 1, final

            async def deleted() -> bool:
                return all([(await client.get(f"/api/jobs/{job_id}")).status_code == 404
                            for job_id in (owned[0], delayed["id"])])

            await eventually(deleted, what="both deleted from history")
        for service in services:
            denied = [line for line in service.lines if "ermission" in line]
            assert not denied, f"{service.name} was refused something it needs:\n" + "\n".join(denied)
        before = (await js.stream_info(names.jobs_stream)).state.messages

        # What each service must not do.
        processor, violations = await as_user("processor")
        pjs = processor.jetstream(timeout=1)
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await pjs.publish(names.job_created("forged", "demo"), b"{}", timeout=1)  # forge a job
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await pjs.publish(names.job_created("forged", "demo", 0, 5), b"{}", timeout=1)  # nor in a lane
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await pjs.publish(names.job_signal("forged", "approval"), b"{}", timeout=1)  # nor signal one
        with pytest.raises(NatsTimeoutError):
            await pjs.purge_stream(names.jobs_stream)
        with pytest.raises(NatsTimeoutError):
            await pjs.delete_stream(names.logs_stream)
        gateway, gateway_violations = await as_user("gateway")
        gjs = gateway.jetstream(timeout=1)
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await gjs.publish(names.job_event("forged", "progress"), b"{}", timeout=1)  # fake progress
        with pytest.raises(NatsTimeoutError):
            await gjs.delete_stream(names.jobs_stream)
        with pytest.raises(NatsTimeoutError):
            await gjs.delete_msg(names.jobs_stream, 1)
        logsink, logsink_violations = await as_user("logsink")
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await logsink.jetstream(timeout=1).publish(names.job_event("forged", "log"), b"{}", timeout=1)
        history, history_violations = await as_user("history")
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):
            await history.jetstream(timeout=1).publish(names.run_event("forged", "ended"), b"{}", timeout=1)
        conductor, conductor_violations = await as_user("conductor")
        with pytest.raises((NatsTimeoutError, NoStreamResponseError)):  # it runs no job: no progress, no cancel
            await conductor.jetstream(timeout=1).publish(names.job_event("forged", "progress"), b"{}", timeout=1)
        with pytest.raises(NatsTimeoutError):
            await conductor.jetstream(timeout=1).purge_stream(names.jobs_stream)
        await processor.flush()
        await gateway.flush()
        await logsink.flush()
        await history.flush()
        await conductor.flush()
        def refused(v: Violations) -> set[str]:
            return {e.split('"')[1] for e in v.errors if "permissions violation" in e.lower() and '"' in e}

        assert refused(violations) == {"jobs.forged.created.demo", "jobs.forged.created.demo.p0.l5",
                                       "jobs.forged.signal.approval", "$js.api.stream.purge.jobs",
                                       "$js.api.stream.delete.logs"}
        assert refused(gateway_violations) == {"jobs.forged.progress", "$js.api.stream.delete.jobs",
                                               "$js.api.stream.msg.delete.jobs"}
        assert refused(logsink_violations) == {"jobs.forged.log"}
        assert refused(history_violations) == {"jobs.forged.run.ended"}
        assert refused(conductor_violations) == {"jobs.forged.progress", "$js.api.stream.purge.jobs"}
        assert (await js.stream_info(names.jobs_stream)).state.messages == before, "something was written or removed"
        await js.stream_info(names.logs_stream)  # still there
    finally:
        await stop_all(services)
