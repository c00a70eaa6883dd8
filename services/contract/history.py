"""The history service's request/reply contract: what the gateway may ask, and what it gets back.

The history service keeps every job (its current state) and every event of every job in a
database, written from the job stream. Other services never open that database: they send these
requests on `rpc.history.<endpoint>` (a `nats.micro` service, see `names.history_rpc`) and get JSON
replies. An error is a micro error reply (headers `Nats-Service-Error-Code` and
`Nats-Service-Error`): code 400 for a request the store refuses, anything else for a failure.

Every reply says how far the store has applied the job stream (`applied_seq`), and a request may
carry `min_seq`: the store then waits (briefly, bounded) until it has applied at least that much
before it answers, so a gateway that has seen an event reads a store that has it too.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .vocabulary import ALL_STATUSES as ALL_STATUSES  # (re-exported for the history's users)
from .vocabulary import ENDED_STATUSES as ENDED_STATUSES

# A field of a job's params or result to match: `params.height`, `result.output.codec`. Each
# segment is a plain name, so a path can be passed to the database as data, never as SQL.
FIELD_ROOTS: Final = ("params", "result")
FIELD_SEGMENT_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
MAX_FIELD_DEPTH: Final = 8
MAX_PAGE: Final = 500


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_seq: int = 0  # answer only once this much of the job stream is applied (bounded wait)


class FieldMatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: list[str]  # ["params", "height"]
    value: Any  # a JSON value; matches a field whose JSON value is equal


class JobFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    statuses: list[str] = []
    types: list[str] = []
    created_after: float | None = None  # unix seconds, inclusive
    created_before: float | None = None  # exclusive
    finished_after: float | None = None
    finished_before: float | None = None
    error_contains: str | None = None  # case-insensitive text in the job's error
    fields: list[FieldMatch] = []
    owners: list[str] = []  # whose (any of them)
    tags: list[str] = []  # labelled with every one of them


class SearchRequest(_Request, frozen=True, kw_only=True):
    filter: JobFilter = JobFilter()
    before: int | None = None  # cursor: a created_seq; the page holds older jobs only
    limit: int = 50


class JobsPage(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[msgspec.Raw]  # job states (as `JobState` encodes), newest first
    next_before: int | None  # pass as `before` for the next (older) page
    applied_seq: int


class JobRequest(_Request, frozen=True, kw_only=True):
    id: str


class JobReply(msgspec.Struct, frozen=True, kw_only=True):
    job: msgspec.Raw  # a `JobState`, or `null` when the store has no such job
    applied_seq: int


class WindowRequest(_Request, frozen=True, kw_only=True):
    """The jobs a gateway keeps in memory: the `recent` newest ones and every one not ended yet,
    newest first, in pages of at most `max_bytes` (NATS messages are bounded)."""

    recent: int = 1000
    before: int | None = None  # cursor from the previous page
    floor: int | None = None  # from the first page: the created_seq of the `recent`-th newest job
    max_bytes: int = 512 * 1024


class WindowPage(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[msgspec.Raw]
    applied_seq: int  # the page reflects the job stream up to here
    next_before: int | None
    floor: int


class EventsRequest(_Request, frozen=True, kw_only=True):
    """One job's stored events with after_seq < seq <= upto_seq, in order, in pages."""

    job_id: str
    after_seq: int = 0
    upto_seq: int | None = None
    only_logs: bool = False
    last: int | None = None  # only the last N of them (still in order)
    max_bytes: int = 512 * 1024


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int  # its sequence in the job stream
    subject: str
    stored_at: float  # when the stream stored it (unix seconds)
    data: msgspec.Raw  # the event's JSON exactly as stored


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[StoredRecord]
    next_after: int | None  # more events: ask again with after_seq = this
    applied_seq: int


class CountsRequest(_Request, frozen=True, kw_only=True):
    """Every job kept (the running totals), or only those of these owners / with every one of these
    tags (counted from the jobs themselves: an owner's jobs, by its index)."""

    owners: list[str] = []
    tags: list[str] = []


class TypeStatusCount(msgspec.Struct, frozen=True):
    type: str
    status: str
    n: int


class CountsReply(msgspec.Struct, frozen=True, kw_only=True):
    counts: list[TypeStatusCount]  # every (type, status) with jobs, over all history kept
    applied_seq: int


class ActivityRequest(_Request, frozen=True, kw_only=True):
    since: float  # unix seconds
    bucket_s: int = 60  # a multiple of 60
    type: str | None = None
    owners: list[str] = []  # only these owners' jobs (any of them)
    tags: list[str] = []  # only jobs with every one of these tags


class ActivityBucket(msgspec.Struct, frozen=True, kw_only=True):
    start: float
    ended: dict[str, int]  # status (completed, failed, cancelled, expired) → jobs that ended then


class TypeDurations(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    count: int  # jobs that ended after running (their run time is known)
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None


class ActivityReply(msgspec.Struct, frozen=True, kw_only=True):
    buckets: list[ActivityBucket]
    durations: list[TypeDurations]
    applied_seq: int


class StatusRequest(_Request, frozen=True, kw_only=True):
    pass


class StatusReply(msgspec.Struct, frozen=True, kw_only=True):
    backend: str  # sqlite | postgresql
    applied_seq: int
    jobs: int
    schema_version: int
    max_age_s: float
    writer: bool  # this instance writes (the others stand by and answer queries)
