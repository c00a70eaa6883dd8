"""Bulk actions as stored operations: the record a gateway writes in the `operations` KV bucket and the
conductors' operation runner keeps up to date, and the stream of operations to run.

A gateway asked (with `Prefer: respond-async`) to cancel or delete every job a filter matches stores
the operation (`queued`) and publishes it on `operations.<id>`; one conductor at a time runs it
(`running`, `done` counting as it goes), and ends it `done` or `failed`. A conductor that dies
half-way leaves the message unacked: another one (or it, restarted) takes it again and goes on where
it stopped — what was cancelled or deleted no longer matches the filter, and the filter was closed at
the operation's creation (`created_before`), so jobs submitted later are never swept in.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .history import JobFilter
from .names import Names

BulkAction = Literal["cancel", "delete"]
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINISHED = frozenset({DONE, FAILED})


class BulkOperation(msgspec.Struct, kw_only=True, frozen=True):
    """KV `operations`, key = the operation's id; also the body of `operations.<id>` (as asked)."""

    id: str
    action: BulkAction
    filter: JobFilter  # closed at creation: `created_before` is at most the operation's `created_at`
    seen_seq: int = 0  # the job stream as the asking gateway had seen it (the history service catches up first)
    created_at: float
    updated_at: float
    status: str = QUEUED  # queued | running | done | failed
    matched: int | None = None  # jobs found to act on (from the first run; a resumed run adds none)
    done: int = 0  # jobs acted on so far
    cancelled: int = 0  # (cancel) ended `cancelled` at once
    cancelling: int = 0  # (cancel) running: they end when their processor has stopped the work
    deleted: int = 0  # (delete) deleted from history
    runs: int = 0  # how many times a conductor took it (more than one: resumed after one went away)
    error: str | None = None  # why it failed
    finished_at: float | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class OperationView(BulkOperation, kw_only=True, frozen=True):
    """`GET /api/operations/{id}` (and the 202 that started it): the record with its links."""

    links: dict[str, str] = {}


operation_decoder: Final = msgspec.json.Decoder(BulkOperation)


def operations_bucket_config(names: Names, replicas: int, keep_s: float) -> KeyValueConfig:
    """Records live as long as the jobs they are about (the job stream's age)."""
    return KeyValueConfig(bucket=names.operations_bucket, history=1, storage=StorageType.FILE, replicas=replicas,
                          ttl=keep_s)

