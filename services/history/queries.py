"""The read side: every query the history service answers, as plain functions over a connection.

Each runs in one snapshot transaction that also reads `applied_seq`, so a reply says exactly which
prefix of the job stream it reflects. Values always travel as parameters; field paths are checked
against a plain-name pattern (contract/history.py) before they reach a query, and even then are
passed as parameters too.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import msgspec

from jobline.contract.history import (
    ALL_STATUSES,
    FIELD_ROOTS,
    FIELD_SEGMENT_PATTERN,
    MAX_FIELD_DEPTH,
    MAX_PAGE,
    ActivityBucket,
    ActivityReply,
    ActivityRequest,
    CountsReply,
    CountsRequest,
    EventsPage,
    EventsRequest,
    FieldMatch,
    JobFilter,
    JobReply,
    JobRequest,
    JobsPage,
    SearchRequest,
    StatusReply,
    StoredRecord,
    TypeDurations,
    TypeStatusCount,
    WindowPage,
    WindowRequest,
)
from jobline.contract.names import is_valid_job_id, is_valid_job_type
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN
from jobline.contract.vocabulary import JobStatus

from . import activity, fields
from .database import Database

_SEGMENT = re.compile(FIELD_SEGMENT_PATTERN)


class BadQuery(ValueError):
    """A request the store refuses (answered with code 400)."""


def _state_column(db: Database) -> str:
    return "state::text" if db.backend == "postgresql" else "state"


def _applied(conn: Any) -> int:
    return int(conn.execute("SELECT applied_seq FROM projection WHERE name = 'jobs'").fetchone()[0])


def _raw(text: str | bytes) -> msgspec.Raw:
    return msgspec.Raw(text.encode() if isinstance(text, str) else text)


def applied_seq(db: Database, conn: Any) -> int:
    with db.transaction(conn, write=False, snapshot=True):
        return _applied(conn)


# --- one job ---------------------------------------------------------------------------------
def job(db: Database, conn: Any, request: JobRequest) -> JobReply:
    if not is_valid_job_id(request.id):
        raise BadQuery(f"invalid job id {request.id!r}")
    with db.transaction(conn, write=False, snapshot=True):
        row = conn.execute(db.sql(f"SELECT {_state_column(db)} FROM jobs WHERE id = ?"), (request.id,)).fetchone()
        return JobReply(job=_raw(row[0]) if row else msgspec.Raw(b"null"), applied_seq=_applied(conn))


# --- search ------------------------------------------------------------------------------------
def check_filter(f: JobFilter) -> None:
    for status in f.statuses:
        if status not in ALL_STATUSES:
            raise BadQuery(f"unknown status {status!r} (one of {', '.join(ALL_STATUSES)})")
    for job_type in f.types:
        if not is_valid_job_type(job_type):
            raise BadQuery(f"invalid job type {job_type!r}")
    for match in f.fields:
        path = match.path
        if not 2 <= len(path) <= MAX_FIELD_DEPTH + 1 or path[0] not in FIELD_ROOTS \
                or not all(_SEGMENT.fullmatch(p) for p in path[1:]):
            raise BadQuery(f"invalid field {'.'.join(path)!r}: params.<name> or result.<name>, names of letters, "
                           f"digits, '_' and '-', at most {MAX_FIELD_DEPTH} deep")
    if f.error_contains is not None and not 0 < len(f.error_contains) <= 200:
        raise BadQuery("error text must have 1 to 200 characters")
    if not all(OWNER_PATTERN.fullmatch(o) for o in f.owners) or not all(TAG_PATTERN.fullmatch(t) for t in f.tags) \
            or len(f.owners) > MAX_PAGE or len(f.tags) > MAX_TAGS:
        raise BadQuery("invalid owner or tag")


def _where(db: Database, f: JobFilter, *, prefix: str = "") -> tuple[list[str], list[Any]]:
    """Conditions on `jobs` (columns named with `prefix`) for everything but the fields."""
    where: list[str] = []
    args: list[Any] = []
    if f.statuses:
        where.append(f"{prefix}status IN ({','.join('?' * len(f.statuses))})")
        args += f.statuses
    if f.types:
        where.append(f"{prefix}type IN ({','.join('?' * len(f.types))})")
        args += f.types
    if f.owners:
        where.append(f"{prefix}owner IN ({','.join('?' * len(f.owners))})")
        args += f.owners
    for tag in f.tags:
        where.append(f"EXISTS (SELECT 1 FROM job_tags t WHERE t.job_id = {prefix or 'jobs.'}id AND t.tag = ?)")
        args.append(tag)
    for column, op, value in (("created_at", ">=", f.created_after), ("created_at", "<", f.created_before),
                              ("finished_at", ">=", f.finished_after), ("finished_at", "<", f.finished_before)):
        if value is not None:
            where.append(f"{prefix}{column} {op} ?")
            args.append(value)
    if f.error_contains is not None:
        needle = f.error_contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # (IS NOT NULL lets the planner walk only the jobs that have an error: a partial index)
        where.append(f"{prefix}error IS NOT NULL AND lower({prefix}error) LIKE ? ESCAPE '\\'")
        args.append("%" + needle + "%")
    return where, args


def _json_match(db: Database, match: FieldMatch, prefix: str = "") -> tuple[str, list[Any]]:
    return (f"{db.json_field(prefix + 'state')} = {db.json_value()}",
            [db.json_path(match.path), json.dumps(match.value, separators=(",", ":"), ensure_ascii=False)])


def search(db: Database, conn: Any, request: SearchRequest) -> JobsPage:
    check_filter(request.filter)
    if not 1 <= request.limit <= MAX_PAGE:
        raise BadQuery(f"limit must be from 1 to {MAX_PAGE}")
    f = request.filter
    state = _state_column(db)
    indexed = [m for m in f.fields if fields.indexable(m.path, m.value)]
    queries: list[tuple[str, list[Any]]] = []
    if indexed:
        # Driven by the field index (newest first, stopping at `limit`), plus the few jobs whose
        # fields are not all indexed (fields.py), whose JSON is matched instead.
        where, args = _where(db, f, prefix="j.")
        first = indexed[0]
        others = [m for m in f.fields if m is not first]
        where = ["f.path = ?", "f.value = ?", *where]
        args = [".".join(first.path), fields.canonical(first.value), *args]
        for match in others:
            if fields.indexable(match.path, match.value):
                where.append("EXISTS (SELECT 1 FROM job_fields g WHERE g.job_id = j.id AND g.path = ? AND g.value = ?)")
                args += [".".join(match.path), fields.canonical(match.value)]
            else:
                condition, values = _json_match(db, match, "j.")
                where.append(condition)
                args += values
        if request.before is not None:
            where.append("f.created_seq < ?")
            args.append(request.before)
        queries.append((f"SELECT j.created_seq, j.{state} FROM job_fields f JOIN jobs j ON j.id = f.job_id "
                        f"WHERE {' AND '.join(where)} ORDER BY f.created_seq DESC LIMIT ?", args))
        where, args = _where(db, f)
        where.insert(0, "fields_partial = 1")
    else:
        where, args = _where(db, f)
    for match in f.fields:
        condition, values = _json_match(db, match)
        where.append(condition)
        args += values
    if request.before is not None:
        where.append("created_seq < ?")
        args.append(request.before)
    queries.append((f"SELECT created_seq, {state} FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
                    + " ORDER BY created_seq DESC LIMIT ?", args))
    with db.transaction(conn, write=False, snapshot=True):
        found: dict[int, Any] = {}
        for sql, args in queries:
            for created_seq, text in conn.execute(db.sql(sql), (*args, request.limit)).fetchall():
                found[int(created_seq)] = text
        applied = _applied(conn)
    newest = sorted(found.items(), reverse=True)[:request.limit]
    return JobsPage(jobs=[_raw(text) for _, text in newest],
                    next_before=newest[-1][0] if len(newest) == request.limit else None, applied_seq=applied)


# --- the gateway's live window ------------------------------------------------------------------
def window(db: Database, conn: Any, request: WindowRequest) -> WindowPage:
    """Newest first: the `recent` newest jobs (created_seq >= floor), then every older job that
    has not ended, in pages of at most `max_bytes`. `before` is exclusive."""
    if not 0 <= request.recent <= 1_000_000:
        raise BadQuery("recent must be from 0 to 1,000,000")
    state = _state_column(db)
    recent_sql = db.sql(f"SELECT created_seq, {state} FROM jobs WHERE created_seq < ? AND created_seq >= ? "
                        "ORDER BY created_seq DESC LIMIT ?")
    live_sql = db.sql(f"SELECT created_seq, {state} FROM jobs WHERE created_seq < ? AND finished_at IS NULL "
                      "ORDER BY created_seq DESC LIMIT ?")
    out: list[msgspec.Raw] = []
    size = 0
    with db.transaction(conn, write=False, snapshot=True):
        applied = _applied(conn)
        floor = request.floor
        if floor is None:
            row = conn.execute(db.sql("SELECT created_seq FROM jobs ORDER BY created_seq DESC LIMIT 1 OFFSET ?"),
                               (max(request.recent - 1, 0),)).fetchone() if request.recent else None
            floor = int(row[0]) if row else (0 if request.recent else _NO_CURSOR)
        before = request.before if request.before is not None else _NO_CURSOR
        for recent in (True, False):
            while not recent or before > floor:
                rows = (conn.execute(recent_sql, (before, floor, 200)) if recent
                        else conn.execute(live_sql, (min(before, floor), 200))).fetchall()
                for created_seq, text in rows:
                    data = text.encode() if isinstance(text, str) else text
                    if out and size + len(data) > request.max_bytes:
                        return WindowPage(jobs=out, applied_seq=applied, next_before=before, floor=floor)
                    out.append(msgspec.Raw(data))
                    size += len(data)
                    before = int(created_seq)
                if len(rows) < 200:
                    break
    return WindowPage(jobs=out, applied_seq=applied, next_before=None, floor=floor)


_NO_CURSOR = 2**62


# --- one job's events ---------------------------------------------------------------------------
def events(db: Database, conn: Any, request: EventsRequest) -> EventsPage:
    if not is_valid_job_id(request.job_id):
        raise BadQuery(f"invalid job id {request.job_id!r}")
    where = ["job_id = ?", "seq > ?"]
    args: list[Any] = [request.job_id, request.after_seq]
    if request.upto_seq is not None:
        where.append("seq <= ?")
        args.append(request.upto_seq)
    if request.only_logs:
        where.append("kind = 'logged'")
    base = f"SELECT seq, subject, stored_at, data FROM job_events WHERE {' AND '.join(where)}"
    with db.transaction(conn, write=False, snapshot=True):
        applied = _applied(conn)
        if request.last is not None:
            if not 1 <= request.last <= 100_000:
                raise BadQuery("last must be from 1 to 100,000")
            rows = conn.execute(db.sql(base + " ORDER BY seq DESC LIMIT ?"), (*args, request.last)).fetchall()[::-1]
        else:
            rows = conn.execute(db.sql(base + " ORDER BY seq LIMIT ?"), (*args, 5000)).fetchall()
    out: list[StoredRecord] = []
    size = 0
    next_after: int | None = None
    # A tail keeps its newest events when the page is full; a range keeps its oldest and goes on.
    for seq, subject, stored_at, data in (reversed(rows) if request.last is not None else rows):
        raw = data.encode() if isinstance(data, str) else data
        if out and size + len(raw) + len(subject) + 64 > request.max_bytes:
            next_after = None if request.last is not None else out[-1].seq
            break
        out.append(StoredRecord(seq=int(seq), subject=subject, stored_at=float(stored_at), data=msgspec.Raw(raw)))
        size += len(raw) + len(subject) + 64
    if request.last is not None:
        out.reverse()
    elif next_after is None and len(rows) == 5000:
        next_after = out[-1].seq
    return EventsPage(events=out, next_after=next_after, applied_seq=applied)


# --- totals and activity -------------------------------------------------------------------------
def counts(db: Database, conn: Any, request: CountsRequest) -> CountsReply:
    args: list[Any] = []
    if not request.owners and not request.tags:
        sql = "SELECT type, status, n FROM job_counts WHERE n > 0 ORDER BY type, status"
    else:
        narrowed = JobFilter(owners=request.owners, tags=request.tags)
        check_filter(narrowed)
        where, args = _where(db, narrowed)
        sql = f"SELECT type, status, COUNT(*) FROM jobs WHERE {' AND '.join(where)} GROUP BY type, status ORDER BY type, status"
    with db.transaction(conn, write=False, snapshot=True):
        rows = conn.execute(db.sql(sql), args).fetchall()
        return CountsReply(counts=[TypeStatusCount(t, s, int(n)) for t, s, n in rows], applied_seq=_applied(conn))


def activity_since(db: Database, conn: Any, request: ActivityRequest) -> ActivityReply:
    now = time.time()
    if not 0 < now - request.since <= 31 * 86400:
        raise BadQuery("since must be within the last 31 days")
    if request.bucket_s < 60 or request.bucket_s % 60 or (now - request.since) / request.bucket_s > 2000:
        raise BadQuery("bucket_s must be a multiple of 60, and at most 2,000 buckets")
    if request.type is not None and not is_valid_job_type(request.type):
        raise BadQuery(f"invalid job type {request.type!r}")
    first = int(request.since // request.bucket_s) * request.bucket_s
    with db.transaction(conn, write=False, snapshot=True):
        rows = _ended_by_minute(db, conn, request, first) if request.owners or request.tags else \
            _minutes_since(db, conn, request, first)
        applied = _applied(conn)
    buckets: dict[int, dict[str, int]] = {start: {} for start in range(first, int(now) + 1, request.bucket_s)}
    runs: dict[str, list[tuple[dict[str, int], float | None]]] = {}
    for minute, job_type, status, n, bins, max_s in rows:
        start = int(minute) // request.bucket_s * request.bucket_s
        ended = buckets.setdefault(start, {})
        ended[status] = ended.get(status, 0) + int(n)
        if status in (JobStatus.COMPLETED, JobStatus.FAILED):  # they ran: their run time counts
            runs.setdefault(job_type, []).append((bins, max_s))
    durations = []
    for job_type in sorted(runs):
        histogram = activity.merge(bins for bins, _ in runs[job_type])
        maxima = [m for _, m in runs[job_type] if m is not None]
        longest = max(maxima) if maxima else None
        p50, p90, p99 = activity.percentiles(histogram, longest, (0.5, 0.9, 0.99))
        durations.append(TypeDurations(type=job_type, count=sum(histogram.values()), p50_s=p50, p90_s=p90, p99_s=p99,
                                       max_s=longest))
    return ActivityReply(buckets=[ActivityBucket(start=float(s), ended=buckets[s]) for s in sorted(buckets)],
                         durations=durations, applied_seq=applied)


MinuteRow = tuple[int, str, str, int, dict[str, int], float | None]  # minute, type, status, jobs, run bins, longest


def _minutes_since(db: Database, conn: Any, request: ActivityRequest, first: int) -> list[MinuteRow]:
    """From the per-minute totals the projection keeps (every job: no scan)."""
    sql = "SELECT minute, type, status, n, run_bins, run_max_s FROM job_minutes WHERE minute >= ?"
    args: list[Any] = [first]
    if request.type is not None:
        sql += " AND type = ?"
        args.append(request.type)
    return [(int(m), t, st, int(n), json.loads(bins), mx) for m, t, st, n, bins, mx in conn.execute(db.sql(sql), args)]


def _ended_by_minute(db: Database, conn: Any, request: ActivityRequest, first: int) -> list[MinuteRow]:
    """Of some owners' or tags' jobs: from those jobs themselves (by the owner index, or the tags'),
    as the totals are not kept per owner (one row per owner and minute would grow with the owners)."""
    narrowed = JobFilter(owners=request.owners, tags=request.tags, types=[request.type] if request.type else [],
                         finished_after=float(first))
    check_filter(narrowed)
    where, args = _where(db, narrowed)
    sql = f"SELECT finished_at, type, status, started_at FROM jobs WHERE {' AND '.join(where)}"
    rows: activity.EndedByMinute = {}
    for finished_at, job_type, status, started_at in conn.execute(db.sql(sql), args):
        activity.count_end(rows, job_type, status, None if started_at is None else float(started_at), float(finished_at))
    return [(m, t, st, n, {str(b): c for b, c in bins.items()}, mx) for (m, t, st), (n, bins, mx) in rows.items()]


def status(db: Database, conn: Any, *, max_age_s: float, writer: bool, schema_version: int) -> StatusReply:
    with db.transaction(conn, write=False, snapshot=True):
        (jobs,) = conn.execute("SELECT COALESCE(SUM(n), 0) FROM job_counts").fetchone()
        return StatusReply(backend=db.backend, applied_seq=_applied(conn), jobs=int(jobs), schema_version=schema_version,
                           max_age_s=max_age_s, writer=writer)
