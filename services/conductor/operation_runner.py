"""The conductors' operation runner: each stored bulk operation (contract/operations.py) run to its
end by one conductor at a time, its record kept up to date as it goes.

An operation's message stays unacked while it runs (`in_progress` keeps it this conductor's): a
conductor told to stop hands it back at once, one that dies leaves it to be redelivered after the ack
wait; either way the next run goes on where the last stopped — what was acted on no longer matches
the (closed) filter, and the counts go on from the record's. A finished operation's message is acked
untouched (a repeat of the request, a redelivery after the end was stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from jobline.contract.names import Names
from jobline.contract.operations import DONE, FAILED, RUNNING, BulkOperation, operation_decoder
from jobline.jobs.bulk import Progress, cancel_matching, delete_matching
from jobline.jobs.errors import Unavailable
from jobline.jobs.history_client import HistoryClient, HistoryUnavailable
from jobline.jobs.writer import JobWriter
from jobline.runtime.consume import DurableTasks, shared_durable
from jobline.runtime.kv_records import KvRecords

log = logging.getLogger(__name__)
ACK_WAIT_S = 30.0  # a conductor that died holding an operation: another takes it after this
SAVE_EVERY_S = 0.25  # the record's counts are written at most this often while it runs
RETRY_AFTER_S = 5.0  # the history service or the event store away: the operation is tried again after this


class OperationRunner:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names, writer: JobWriter, history: HistoryClient,
                 kv: KeyValue):
        self._nc, self._js, self._names = nc, js, names
        self._writer, self._history = writer, history
        self._records = KvRecords(kv, BulkOperation)
        self._tasks: DurableTasks | None = None

    async def start(self) -> None:
        names = self._names
        config = shared_durable(names.operation_runner_durable, "the conductors' operation runner: bulk actions",
                                ACK_WAIT_S, filter_subject=names.all_operations)
        self._tasks = DurableTasks(self._nc, self._js, names.operations_stream, config, self._handle, limit=4,
                                   name="operation runner")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()

    async def _handle(self, msg: Msg) -> None:
        try:
            asked = operation_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("dropping an undecodable operation on %s", msg.subject)
            await msg.term()
            return
        taken = await self._records.update(asked.id, lambda record: _taken(record))
        if taken is None:  # finished already, or gone (expired): nothing to do
            await msg.ack()
            return
        log.info("running operation %s (%s, run %d, %d done before)", taken.id, taken.action, taken.runs, taken.done)
        try:
            outcome = await self._run(msg, taken)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # (told to stop: another conductor goes on now)
                await msg.nak()
            raise
        if outcome is None:
            await msg.nak(delay=RETRY_AFTER_S)
        else:
            await msg.ack()

    async def _run(self, msg: Msg, taken: BulkOperation) -> BulkOperation | None:
        """Run it, saving its counts as it goes; its finished record, or None to try again later."""
        progress = Progress()
        act = cancel_matching if taken.action == "cancel" else delete_matching
        work = asyncio.create_task(act(self._writer, self._history, taken.filter, progress=progress,
                                       seen_seq=taken.seen_seq))
        last_beat = time.monotonic()
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=SAVE_EVERY_S)
                if progress.changed.is_set():
                    progress.changed.clear()
                    await self._save(taken, progress, RUNNING)
                if time.monotonic() - last_beat > ACK_WAIT_S / 3:
                    last_beat = time.monotonic()
                    await msg.in_progress()
        except BaseException:
            work.cancel()
            raise
        failure = work.exception()
        if failure is None:
            return await self._save(taken, progress, DONE)
        if isinstance(failure, Unavailable | HistoryUnavailable | NatsError | TimeoutError):
            log.warning("operation %s stopped half-way (%s); trying again in %.0fs", taken.id, failure, RETRY_AFTER_S)
            await self._save(taken, progress, RUNNING, error=f"stopped half-way, trying again: {failure}")
            return None
        log.error("operation %s failed", taken.id, exc_info=failure)
        return await self._save(taken, progress, FAILED, error=str(failure) or type(failure).__name__)

    async def _save(self, taken: BulkOperation, progress: Progress, status: str,
                    error: str | None = None) -> BulkOperation:
        now = time.time()
        outcomes = progress.outcomes
        matched = taken.done + progress.matched if progress.matched is not None else taken.matched
        record = msgspec.structs.replace(
            taken, status=status, updated_at=now, error=error,
            matched=max(matched or 0, taken.matched or 0) if matched is not None else None,
            done=taken.done + progress.done, cancelled=taken.cancelled + outcomes["cancelled"],
            cancelling=taken.cancelling + outcomes["cancelling"], deleted=taken.deleted + outcomes["deleted"],
            finished_at=now if status in (DONE, FAILED) else None)
        # (only this conductor runs it now: the message is its own while it is not acked)
        await self._records.update(taken.id, lambda current: record if current is not None else None)
        return record


def _taken(record: BulkOperation | None) -> BulkOperation | None:
    if record is None or record.is_finished:
        return None
    return msgspec.structs.replace(record, status=RUNNING, runs=record.runs + 1, updated_at=time.time(), error=None)
