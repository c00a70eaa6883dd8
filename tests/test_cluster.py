"""Jobline on a real 3-node NATS cluster (R3 streams): the JetStream leader of the jobs stream is
killed while jobs run and brought back; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from jobline.contract.names import Names

from .cluster import Cluster, connect_to, running_cluster, wait_for_jetstream
from .helpers import eventually, wait_for_history_seq, wait_for_job_type
from .oracle import read_timeline
from .processes import ServiceProcess, gateway_url, service_env, stop_all
from .whole_system import Watcher, check_job, log_lines_of, stored_log_lines, submit_until_accepted

pytestmark = pytest.mark.slow

DEMO = {"type": "demo", "params": {"steps": ["A", "B"], "step_seconds": 0.5, "ticks_per_step": 3}}


def page_ids(page: dict[str, list[dict[str, str]]]) -> list[str]:
    return [job["id"] for job in page["jobs"]]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Client]]:
    with running_cluster(tmp_path / "cluster") as running:
        nc = await connect_to(running)
        try:
            await wait_for_jetstream(nc)
            yield running, nc
        finally:
            await nc.close()


async def test_killing_the_stream_leader_mid_stream_loses_and_doubles_nothing(
    cluster: tuple[Cluster, Client], names: Names, tmp_path: Path
) -> None:
    nodes, nc = cluster
    js = nc.jetstream()
    env = service_env(",".join(nodes.urls), names, tmp_path / "data", JOBLINE_STREAM_REPLICAS="3",
                      JOBLINE_PORT="0", JOBLINE_ACK_WAIT_S="5")
    services = [await ServiceProcess.service("logsink", env), await ServiceProcess.service("history", env)]
    try:
        await services[0].wait_for_line(r"logsink consuming", timeout=60)
        await services[1].wait_for_line(r"history consuming", timeout=60)
        for _ in range(2):
            services.append(await ServiceProcess.service("processor", env))
            await services[-1].wait_for_line(r"processing demo", timeout=60)
        await wait_for_job_type(js, names, "demo", timeout=30)
        gateways = []
        for _ in range(2):
            services.append(await ServiceProcess.service("gateway", env))
            gateways.append(await gateway_url(services[-1], timeout=60))
        info = await js.stream_info(names.jobs_stream)
        assert info.config.num_replicas == 3 and info.cluster is not None and len(info.cluster.replicas or []) == 2
        for bucket in (names.types_bucket, names.idempotency_bucket):  # KV buckets are streams too
            assert (await js.stream_info(f"KV_{bucket}")).config.num_replicas == 3
        for bucket in (names.uploads_bucket, names.artifacts_bucket):
            assert (await js.stream_info(f"OBJ_{bucket}")).config.num_replicas == 3

        clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in gateways]
        watchers: list[Watcher] = []
        follows: list[asyncio.Task[None]] = []

        async def wave(count: int) -> None:
            ids = await asyncio.gather(*(submit_until_accepted(clients[i % 2], DEMO) for i in range(count)))
            for i, job_id in enumerate(ids):
                watcher = Watcher(job_id)
                watchers.append(watcher)
                follows.append(asyncio.create_task(watcher.follow(clients[(i + 1) % 2])))

        async def some_started() -> bool:
            return any(w.events for w in watchers)

        try:
            await wave(8)
            await eventually(some_started, timeout=30, what="the first jobs to start")
            leader = (await js.stream_info(names.jobs_stream)).cluster.leader  # type: ignore[union-attr]
            assert leader is not None
            killed = nodes.kill(leader)
            await wave(8)  # submitted while the stream elects a new leader
            nodes.start_node(killed)
            await wave(8)
            await asyncio.gather(*follows)

            async def leader_changed() -> bool:
                info = await js.stream_info(names.jobs_stream)
                return info.cluster is not None and info.cluster.leader not in (None, leader)

            await eventually(leader_changed, timeout=30, what="a new leader")
            for watcher in watchers:
                timeline = await check_job(js, names, clients[0], watcher)
                assert timeline[-1].kind == "completed", (watcher.job_id, timeline[-1])

                want = log_lines_of(timeline)

                async def all_lines_stored(job_id: str = watcher.job_id, want: list[str] = want) -> bool:
                    return await stored_log_lines(clients[0], job_id) == want

                try:
                    # The log stream sources job logs from the job stream; after the leader of the
                    # latter is killed that source can take a while to resume (seen: > 30 s once).
                    await eventually(all_lines_stored, timeout=90, what=f"the log lines of {watcher.job_id}")
                except AssertionError as exc:  # say what was stored, and what the logsink was doing
                    stored = await stored_log_lines(clients[0], watcher.job_id)
                    logs = await js.stream_info(names.logs_stream)
                    raise AssertionError(f"{exc}: stored {stored}, expected {log_lines_of(timeline)}; "
                                         f"killed {leader}; log stream {logs.state} sources {logs.sources}; "
                                         f"logsink:\n{services[0].output()}") from None

            async def replicas_current() -> bool:
                info = await js.stream_info(names.jobs_stream)
                return bool(info.cluster and info.cluster.replicas
                            and all(r.current for r in info.cluster.replicas) and len(info.cluster.replicas) == 2)

            await eventually(replicas_current, timeout=30, what="the restarted node to catch up")
            assert len({w.job_id for w in watchers}) == 24

            # The history service kept every event of every job once, and both gateways list them.
            last = (await js.stream_info(names.jobs_stream)).state.last_seq
            await wait_for_history_seq(js, names, last, timeout=60)
            database = tmp_path / "data" / "history.sqlite3"
            with sqlite3.connect(database) as db:
                for watcher in watchers:
                    stored = [row[0] for row in db.execute("SELECT seq FROM job_events WHERE job_id = ? ORDER BY seq",
                                                           (watcher.job_id,))]
                    assert stored == [r.seq for r in await read_timeline(js, names, watcher.job_id)]
            for client in clients:
                page = (await client.get("/api/jobs", params={"limit": 100, "status": "completed"})).json()
                assert page["partial"] is False and set(page_ids(page)) == {w.job_id for w in watchers}
        finally:
            for task in follows:
                task.cancel()
            for client in clients:
                await client.aclose()
    finally:
        await stop_all([s for s in services if s.process.returncode is None])
