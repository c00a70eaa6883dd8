"""The logsink: every line stored once, keyed by stream sequence, and nothing lost while it is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js import JetStreamContext

from jobline.contract.events import LogLineWritten, LogPage, LogQuery, ServiceLogged, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.logsink.service import run
from jobline.logsink.settings import LogsinkSettings
from jobline.logsink.store import LogStore
from jobline.runtime.embedded_nats import EmbeddedNats
from jobline.runtime.stream_setup import ensure_streams

from .helpers import TEST_RETENTION, eventually


async def publish_lines(js: JetStreamContext, names: Names, job_id: str, count: int, start: int = 0) -> list[str]:
    messages = []
    for i in range(start, start + count):
        line = LogLineWritten(ts=float(i), job_id=job_id, attempt=1, level="info", message=f"line {i}")
        await js.publish(subject_of(names, line), encoder.encode(line))
        messages.append(line.message)
    return messages


async def query(nc: Client, names: Names, q: LogQuery) -> LogPage:
    try:
        reply = await nc.request(names.log_history_rpc, encoder.encode(q), timeout=5)
    except NoRespondersError:  # the logsink is still starting
        return LogPage(rows=[], last_seq=q.after_seq)
    return msgspec.json.decode(reply.data, type=LogPage)


async def stored_messages(nc: Client, names: Names, job_id: str) -> list[str]:
    out: list[str] = []
    after = 0
    while True:
        page = await query(nc, names, LogQuery(job_id=job_id, after_seq=after, limit=100))
        out += [row.message for row in page.rows]
        if not page.rows:
            return out
        after = page.last_seq


async def test_lines_logged_while_the_logsink_is_down_are_stored_in_order_once_it_returns(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, nc: Client, js: JetStreamContext
) -> None:
    settings = LogsinkSettings(nats_servers=[nats_server.url], names=names, retention=TEST_RETENTION, data_dir=tmp_path,
                               batch_size=50)
    await ensure_streams(js, names, TEST_RETENTION)
    first = await publish_lines(js, names, "job1", 120)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))

    async def has(n: int) -> bool:
        return len(await stored_messages(nc, names, "job1")) >= n

    await eventually(lambda: has(120), what="first batch")
    stop.set()
    await task

    # Down: more lines arrive.
    second = await publish_lines(js, names, "job1", 230, start=120)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        await eventually(lambda: has(350), what="catch-up after downtime")
        assert await stored_messages(nc, names, "job1") == first + second
    finally:
        stop.set()
        await task


def test_a_redelivered_batch_adds_no_rows(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    try:
        rows = [(seq, float(seq), "info", f"m{seq}", "job", 1, None, None, None, seq) for seq in range(1, 11)]
        assert store.writer.submit(store.write, rows).result() == 10
        more = [*rows[5:], (11, 11.0, "info", "m11", "job", 1, None, None, None, 11)]
        assert store.writer.submit(store.write, more).result() == 1
        got = store.reader.submit(store.query, LogQuery(job_id="job", limit=100)).result()
        assert [r.seq for r in got] == list(range(1, 12))
    finally:
        store.close()


async def test_service_records_are_queryable_by_service(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, nc: Client, js: JetStreamContext
) -> None:
    settings = LogsinkSettings(nats_servers=[nats_server.url], names=names, retention=TEST_RETENTION, data_dir=tmp_path)
    await ensure_streams(js, names, TEST_RETENTION)
    record = ServiceLogged(ts=1.0, service="gateway", instance="g1", level="warning", logger="x", message="<b>not html</b>")
    await js.publish(names.service_log("gateway", "warning"), encoder.encode(record))
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        async def found() -> bool:
            page = await query(nc, names, LogQuery(service="gateway"))
            return any(row.message == "<b>not html</b>" for row in page.rows)

        await eventually(found, what="the gateway's record")
        page = await query(nc, names, LogQuery(service="gateway"))
        assert all(row.service == "gateway" for row in page.rows)
        bad = await nc.request(names.log_history_rpc, b"{not json", timeout=5)
        assert b"bad query" in bad.data
    finally:
        stop.set()
        await task
