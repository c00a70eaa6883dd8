"""Stored bulk operations (contract/operations.py): start one, read one, list them, follow one.

Starting one stores its record (`queued`) in the `operations` bucket, then publishes it for the
conductors; an Idempotency-Key names the operation (the key hashed), so a repeated request — also
after the gateway that took the first died before publishing — answers the same operation and runs
nothing twice (its message is published again only while it is still `queued`, and the stream keeps
one message per operation id in its duplicate window; a conductor acks a finished one untouched).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from jobline.contract.events import encoder
from jobline.contract.history import JobFilter
from jobline.contract.names import Names, is_valid_job_id
from jobline.contract.operations import QUEUED, BulkAction, BulkOperation
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.publishing import publish_reliably

from .errors import NotFound, Unavailable
from .idempotency import KeyReused
from .writer import new_job_id

_decoder = msgspec.json.Decoder(BulkOperation)
LISTED = 100  # the newest operations `GET /api/operations` lists


def operation_id(idempotency_key: str) -> str:
    """The operation an Idempotency-Key names (hashed: the key may hold any characters)."""
    return "op-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _asked(job_filter: JobFilter) -> JobFilter:
    # (what the client asked, apart from the moment the operation closed it at)
    return msgspec.structs.replace(job_filter, created_before=None)


class Operations:
    def __init__(self, js: JetStreamContext, names: Names, kv: KeyValue):
        self._js, self._names = js, names
        self._records = KvRecords(kv, BulkOperation)

    async def start(self, action: BulkAction, job_filter: JobFilter, seen_seq: int,
                    idempotency_key: str | None = None) -> tuple[BulkOperation, bool]:
        """The operation stored and handed to the conductors; and whether this call made it (False:
        the Idempotency-Key's earlier request did). KeyReused when that key asked for another action."""
        now = time.time()
        closed = msgspec.structs.replace(job_filter, created_before=min(job_filter.created_before or now, now))
        operation = BulkOperation(id=operation_id(idempotency_key) if idempotency_key else "op-" + new_job_id(),
                                  action=action, filter=closed, seen_seq=seen_seq, created_at=now, updated_at=now)
        fresh = await self._records.create(operation.id, operation)
        if not fresh:
            earlier = await self._records.value(operation.id)
            if earlier is None:
                raise Unavailable("the operation of that Idempotency-Key was being removed; try again",
                                  title="Operation store busy")
            if earlier.action != action or _asked(earlier.filter) != _asked(job_filter):
                raise KeyReused("this Idempotency-Key was used for another bulk action; use a new key",
                                key="Idempotency-Key", source="header")
            operation = earlier
        if operation.status == QUEUED:  # (again for a repeat: the first gateway may have died before this)
            await publish_reliably(self._js, self._names.operation(operation.id), encoder.encode(operation),
                                   msg_id=operation.id)
        return operation, fresh

    async def get(self, operation_id: str) -> BulkOperation:
        return (await self._revision(operation_id))[0]

    async def _revision(self, operation_id: str) -> tuple[BulkOperation, int]:
        found = await self._records.get(operation_id) if is_valid_job_id(operation_id) else None
        if found is None:
            raise NotFound(f"no operation {operation_id!r} (operations are kept as long as the job stream keeps jobs)",
                           title="Operation not found")
        return found

    async def newest(self, limit: int = LISTED) -> list[BulkOperation]:
        try:
            keys = await self._records.kv.keys()
        except NoKeysError:
            return []
        found = [await self._records.value(key) for key in keys]
        operations = sorted((op for op in found if op is not None), key=lambda op: op.created_at, reverse=True)
        return operations[:limit]

    async def follow(self, operation_id: str) -> AsyncGenerator[BulkOperation, None]:
        """The operation as it is now, then each change, until it has finished (NotFound first when
        there is none)."""
        current, revision = await self._revision(operation_id)
        yield current
        if current.is_finished:
            return
        watcher = await self._records.kv.watch(operation_id)
        try:
            async for entry in watcher:
                if entry is None or not entry.value or int(entry.revision or 0) <= revision:
                    continue  # (the marker after the initial value; a delete; what was read above)
                revision = int(entry.revision or 0)
                current = _decoder.decode(entry.value)
                yield current
                if current.is_finished:
                    return
        finally:
            with contextlib.suppress(Exception):
                await cast(Any, watcher).stop()  # (untyped in nats-py)
