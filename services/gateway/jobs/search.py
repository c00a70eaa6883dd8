"""Lists, search and totals over all history: asked of the history service, with this gateway's
memory as the fallback for plain lists while the history service is away."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from jobline.contract.events import encoder
from jobline.contract.history import (
    ALL_STATUSES,
    ENDED_STATUSES,
    FIELD_ROOTS,
    FIELD_SEGMENT_PATTERN,
    MAX_FIELD_DEPTH,
    MAX_PAGE,
    FieldMatch,
    JobFilter,
)
from jobline.contract.job_state import JobState
from jobline.contract.names import is_valid_job_type
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN
from jobline.jobs.errors import Malformed, Unavailable
from jobline.jobs.history_client import HistoryClient, HistoryUnavailable, state_decoder

from ..http.limits import CONTROL_CHARACTER, MAX_UNIX_TIME
from ..live.read_model import ReadModel

_SEGMENT = re.compile(FIELD_SEGMENT_PATTERN)
FIELD_PREFIXES = tuple(f"{root}." for root in FIELD_ROOTS)

# The chart windows: how far back, and how wide one bar is.
WINDOWS = {"hour": (3600, 60), "day": (86400, 900), "week": (7 * 86400, 3600)}


class JobPage(msgspec.Struct):
    """What `GET /api/jobs` answers (documented; the route builds it from stored JSON)."""

    jobs: list[JobState]
    next_before: int | None  # pass as ?before= for the next (older) page
    partial: bool = False  # the history service did not answer: only the jobs in this gateway's memory


def _bad(key: str, message: str) -> Malformed:
    return Malformed(message, title="Bad filter", key=key, source="query")


def _csv(raw: str | None, key: str) -> list[str]:
    if raw is None:
        return []
    parts = [part.strip(" ") for part in raw.split(",")]
    if not all(parts):
        raise _bad(key, f"{key} is a comma-separated list of names, without empty ones")
    return parts


def _json_or_text(raw: str) -> Any:
    """A field value as the CLI's -p takes it: JSON when it parses (360, true, "a b"), else text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_filter(query: Mapping[str, str], *, status: str | None, job_type: str | None, created_after: float | None,
                 created_before: float | None, finished_after: float | None, finished_before: float | None,
                 error: str | None, owner: str | None = None, tag: str | None = None) -> JobFilter:
    statuses, types = _csv(status, "status"), _csv(job_type, "type")
    owners, tags = _csv(owner, "owner"), _csv(tag, "tag")
    if not all(OWNER_PATTERN.fullmatch(o) for o in owners) or len(owners) > MAX_PAGE:
        raise _bad("owner", "owner is a comma-separated list of owner ids")
    if not all(TAG_PATTERN.fullmatch(t) for t in tags) or len(tags) > MAX_TAGS:
        raise _bad("tag", f"tag is a comma-separated list of at most {MAX_TAGS} tags (letters, digits, _ and -)")
    for value in statuses:
        if value not in ALL_STATUSES:
            raise _bad("status", f"unknown status {value!r} (one of {', '.join(ALL_STATUSES)})")
    for value in types:
        if not is_valid_job_type(value):
            raise _bad("type", f"{value!r} is not a job type name")
    if error is not None and not 0 < len(error) <= 200:
        raise _bad("error", "error text must have 1 to 200 characters")
    if error is not None and CONTROL_CHARACTER.search(error):
        raise _bad("error", "error text is printable text (no control characters)")
    times = {"created_after": created_after, "created_before": created_before, "finished_after": finished_after,
             "finished_before": finished_before}
    for name, moment in times.items():
        if moment is not None and not (math.isfinite(moment) and 0 <= moment <= MAX_UNIX_TIME):
            raise _bad(name, f"{name} is a time in unix seconds (0 to {MAX_UNIX_TIME:g})")
    fields = []
    for key, value in query.items():
        if not key.startswith(FIELD_PREFIXES):
            continue
        path = key.split(".")
        if len(path) > MAX_FIELD_DEPTH + 1 or not all(_SEGMENT.fullmatch(p) for p in path[1:]):
            raise _bad(key, f"{key!r}: a field is params.<name> or result.<name> (names of letters, digits, '_' "
                            f"and '-', at most {MAX_FIELD_DEPTH} deep)")
        fields.append(FieldMatch(path=path, value=_json_or_text(value)))
    return JobFilter(statuses=statuses, types=types, created_after=created_after, created_before=created_before,
                     finished_after=finished_after, finished_before=finished_before, error_contains=error, fields=fields,
                     owners=owners, tags=tags)


def _page_json(jobs: list[bytes], next_before: int | None, partial: bool) -> bytes:
    return (b'{"jobs":[' + b",".join(jobs) + b'],"next_before":' + encoder.encode(next_before)
            + b',"partial":' + (b"true" if partial else b"false") + b"}")


async def list_jobs(history: HistoryClient, read_model: ReadModel, job_filter: JobFilter, *, before: int | None,
                    limit: int) -> bytes:
    """A page of jobs, newest first, over all history (the history service's), as JSON."""
    if not 1 <= limit <= MAX_PAGE:
        raise _bad("limit", f"limit must be from 1 to {MAX_PAGE}")
    seen = read_model.last_seq
    try:
        page = await history.search(job_filter, before=before, limit=limit, min_seq=seen)
    except HistoryUnavailable as exc:
        return _from_memory(read_model, job_filter, before=before, limit=limit, cause=exc)
    jobs = [bytes(raw) for raw in page.jobs]
    if page.applied_seq < seen:
        # The history service is a moment behind this gateway: a job it lists may have moved on.
        for index, raw in enumerate(page.jobs):
            stored = state_decoder.decode(raw)
            live = read_model.get(stored.id)
            if live is not None and live.seq > stored.seq:
                jobs[index] = encoder.encode(live)
    return _page_json(jobs, page.next_before, partial=False)


def _from_memory(read_model: ReadModel, job_filter: JobFilter, *, before: int | None, limit: int,
                 cause: Exception) -> bytes:
    f = job_filter
    if f.fields or f.error_contains or f.finished_after is not None or f.finished_before is not None:
        raise Unavailable(f"searching needs the history service, which did not answer ({cause})",
                          title="History unavailable")
    statuses, types, owners, tags = set(f.statuses), set(f.types), set(f.owners), set(f.tags)
    page: list[JobState] = []
    for state in read_model.newest_first(before_seq=before, created_after=f.created_after,
                                              created_before=f.created_before):
        if (statuses and state.status not in statuses) or (types and state.type not in types) \
                or (owners and state.owner not in owners) or not tags <= set(state.tags):
            continue
        page.append(state)
        if len(page) == limit:
            break
    next_before = page[-1].created_seq if len(page) == limit else None
    return _page_json([encoder.encode(state) for state in page], next_before, partial=True)


async def counts(history: HistoryClient, owners: list[str] | None = None, tags: list[str] | None = None
                 ) -> dict[str, Any]:
    """Jobs per status and per type over all history kept (those of these owners, with these tags)."""
    reply = await history.counts(owners, tags)
    by_status: dict[str, int] = {status: 0 for status in ALL_STATUSES}
    by_type: dict[str, dict[str, int]] = {}
    for row in reply.counts:
        by_status[row.status] = by_status.get(row.status, 0) + row.n
        by_type.setdefault(row.type, {})[row.status] = row.n
    return {"total": sum(by_status.values()), "by_status": by_status, "by_type": by_type,
            "applied_seq": reply.applied_seq}


async def activity(history: HistoryClient, window: str, job_type: str | None, owners: list[str] | None = None,
                   tags: list[str] | None = None) -> dict[str, Any]:
    """Jobs that ended per bucket by outcome, and run-time percentiles per type, over a window (of
    these owners' jobs, with these tags)."""
    if window not in WINDOWS:
        raise _bad("window", f"window is one of {', '.join(WINDOWS)}")
    if job_type is not None and not is_valid_job_type(job_type):
        raise _bad("type", f"{job_type!r} is not a job type name")
    span, bucket = WINDOWS[window]
    reply = await history.activity(time.time() - span, bucket, job_type, owners, tags)
    return {
        "window": window, "bucket_s": bucket,
        "buckets": [{"start": b.start, **{s: b.ended.get(s, 0) for s in ENDED_STATUSES}} for b in reply.buckets],
        "durations": [msgspec.structs.asdict(d) for d in reply.durations],
        "applied_seq": reply.applied_seq,
    }
