"""HTTP routes of jobs: submit, look up, list and search, cancel, read a job's past.

Thin handlers: each is given what it uses (app.py's dependencies) and says which errors it may
answer besides its success (`errors=`, read into the OpenAPI document); the domain's errors become
problem details in one place (http/problems.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody

from jobline.contract.events import JobScheduled, JobTypeInfo, encoder
from jobline.contract.history import JobFilter
from jobline.contract.job_state import JobState
from jobline.contract.operations import BulkAction, OperationView
from jobline.contract.submissions import JobSubmission
from jobline.jobs.bulk import MAX_BULK, BulkCancelled, BulkDeleted, applicable, cancel_matching, delete_matching, matching
from jobline.jobs.catalogue import Catalogue
from jobline.jobs.errors import Invalid, Malformed, NotFound
from jobline.jobs.history_client import HistoryClient
from jobline.jobs.operations import Operations
from jobline.jobs.reader import JobReader
from jobline.jobs.timeline import decoded, fold
from jobline.jobs.writer import Held, JobWriter

from ..http.job_scope import check_visible, scope_of, stamp
from ..http.limits import MAX_JOB_BYTES, MAX_SEQ
from ..http.sent_json import SentJSON
from ..live.read_model import ReadModel
from ..live.streams import Live, wait_for_change
from ..operations.routes import view
from . import search
from .bulk import progress_stream
from .replay import parse_at, timeline_json
from .search import JobPage


class Accepted(msgspec.Struct):
    id: str
    status: str
    links: dict[str, str]


def links(job_id: str) -> dict[str, str]:
    base = f"/api/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "logs": f"{base}/logs"}


def etag(state: JobState) -> str:
    """The job's version: the sequence of the last event folded into it."""
    return f'"{state.seq}"'


@post("/api/jobs", status_code=202, summary="Submit a job", request_max_body_size=MAX_JOB_BYTES,
      errors=(409, 413, 422, 429, 503),
      description="With an `Idempotency-Key` header, repeating the request (also concurrently, also days "
      "later within JOBLINE_IDEMPOTENCY_TTL_S) returns the same job instead of creating another. With a "
      "`unique_key`, one job of the type per key: `unique_mode` `active` (default: while a job of the key has not "
      "ended, a submission answers 200 with that job, nothing made), `throttle` (one per `unique_window_s`: 200 "
      "with the window's job), `debounce` (the job starts `unique_window_s` after the last submission, with its "
      "params: each new one replaces the waiting job, which ends cancelled naming its replacement).",
      responses={202: ResponseSpec(Accepted, description="Stored: the job runs as soon as a processor takes it",
                                   generate_examples=False),
                 200: ResponseSpec(Accepted, description="Its unique_key is held by this job: nothing was made",
                                   generate_examples=False)})
async def submit_job(
    request: Request[Any, Any, Any],
    writer: NamedDependency[JobWriter],
    data: JSONBody[JobSubmission],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    traceparent: Annotated[str | None, HeaderParameter(name="traceparent")] = None,
) -> SentJSON:
    try:
        event, fresh = await writer.submit(stamp(request.scope, data), idempotency_key, traceparent=traceparent)
    except Held as held:  # its unique_key is held: that job answers, nothing is made
        accepted = Accepted(id=held.job_id, status=held.state.status if held.state else "pending",
                            links=links(held.job_id))
        return SentJSON(200, encoder.encode(accepted), [(b"location", accepted.links["self"].encode()),
                                                        (b"unique-key-held", b"true")])
    job_links = links(event.job_id)
    headers = [(b"location", job_links["self"].encode())]
    # What a new job is when accepted (a processor may have taken it by now: GET says).
    status = "scheduled" if isinstance(event, JobScheduled) else "pending"
    if not fresh:
        headers.append((b"idempotent-replayed", b"true"))
        current = writer.reader.live.get(event.job_id)  # (in memory, if it is: no lookup for a status)
        status = current.status if current else status
    accepted = Accepted(id=event.job_id, status=status, links=job_links)
    return SentJSON(202, encoder.encode(accepted), headers)


@get("/api/jobs", summary="List and search jobs over all history, newest first", errors=(503,),
     description="Filters (all optional, combined with AND): `status`, `type` and `owner` (comma lists: any of "
     "them), `tag` (a comma list: every one of them), `created_after`/"
     "`created_before` and `finished_after`/`finished_before` (unix seconds), `error` (text in the job's error, "
     "case-insensitive), and any `params.<name>=<value>` or `result.<name>=<value>` (nested names with dots; the "
     "value is JSON when it parses — `360`, `true` — else text). `before` is the cursor from `next_before`: "
     "stable while new jobs arrive. Answered by the history service; while it is away, a plain list comes from "
     "this gateway's memory with `partial: true`, and a search answers 503.",
     responses={200: ResponseSpec(JobPage, description="A page of jobs", generate_examples=False)})
async def list_jobs(
    request: Request[Any, Any, Any],
    history: NamedDependency[HistoryClient],
    read_model: NamedDependency[ReadModel],
    status: FromQuery[str | None] = None,
    type: FromQuery[str | None] = None,
    before: FromQuery[int | None] = None,
    limit: FromQuery[int] = 50,
    created_after: FromQuery[float | None] = None,
    created_before: FromQuery[float | None] = None,
    finished_after: FromQuery[float | None] = None,
    finished_before: FromQuery[float | None] = None,
    error: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
) -> Response[bytes]:
    if before is not None and not 0 <= before <= MAX_SEQ:
        raise Malformed("before is a cursor from next_before (>= 0)", title="Bad cursor", key="before", source="query")
    job_filter = search.parse_filter(request.query_params, status=status, job_type=type, created_after=created_after,
                                     created_before=created_before, finished_after=finished_after,
                                     finished_before=finished_before, error=error, owner=owner, tag=tag)
    limited = scope_of(request.scope)
    if limited is not None and limited.lists:  # a token of an owner or tags lists those jobs only
        job_filter = msgspec.structs.replace(
            job_filter, owners=[limited.owner] if limited.owner is not None else job_filter.owners,
            tags=sorted(set(job_filter.tags) | limited.tags))
    body = await search.list_jobs(history, read_model, job_filter, before=before, limit=limit)
    return Response(body, media_type="application/json")


_ASYNC = ("With `Prefer: respond-async` (RFC 7240): a stored operation instead — `202` with its record and `Location`; "
          "a conductor runs it (it goes on if this gateway stops, and resumes where it stopped if the conductor does); "
          "follow it at `/api/operations/{id}` and its `events`. The whole set is bounded: more than 10,000 matching "
          "jobs are refused (`422` with `matched`), to narrow the filter. With an `Idempotency-Key`, a repeat answers "
          "the same operation.")


@post("/api/jobs/cancel", status_code=200, summary="Cancel every live job a filter matches", errors=(400, 409, 422, 503),
      description="`status` (required: the live statuses to cancel, e.g. `pending,retrying`; ended ones match "
      "nothing), and optionally `type`, `owner`, `tag`, `created_after`, `created_before`, `params.<name>=` as "
      "for `GET /api/jobs`. Each job is cancelled as `POST /api/jobs/{id}/cancel` would; at most 10,000 a "
      "request: `more: true` when others remain (ask again). `{\"matched\", \"cancelled\", \"cancelling\", "
      "\"more\"}`. `dry_run=true`: only count (`matched`), cancel nothing. With `Accept: text/event-stream`: "
      "its progress as events (`matched`, `progress` {done, matched}, `done` with that body). " + _ASYNC,
      responses={202: ResponseSpec(OperationView, description="`Prefer: respond-async`: the operation is stored; "
                                   "a conductor runs it (follow it at its `links`)", generate_examples=False)})
async def cancel_jobs(
    request: Request[Any, Any, Any],
    writer: NamedDependency[JobWriter],
    history: NamedDependency[HistoryClient],
    operations: NamedDependency[Operations],
    status: FromQuery[str],
    type: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    created_after: FromQuery[float | None] = None,
    created_before: FromQuery[float | None] = None,
    dry_run: FromQuery[bool] = False,
) -> BulkCancelled | Response[Any]:
    job_filter = search.parse_filter(request.query_params, status=status, job_type=type, created_after=created_after,
                                     created_before=created_before, finished_after=None, finished_before=None,
                                     error=None, owner=owner, tag=tag)
    if _wants_operation(request) and not dry_run:
        return await _start_operation(request, writer, history, operations, "cancel", job_filter)
    if _wants_progress(request) and not dry_run:
        return await progress_stream(lambda progress: cancel_matching(writer, history, job_filter, progress=progress))
    return await cancel_matching(writer, history, job_filter, dry_run)  # (HistoryUnavailable: 503, nothing cancelled)


def _wants_progress(request: Request[Any, Any, Any]) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _wants_operation(request: Request[Any, Any, Any]) -> bool:
    return "respond-async" in request.headers.get("prefer", "").lower()


async def _start_operation(request: Request[Any, Any, Any], writer: JobWriter, history: HistoryClient,
                           operations: Operations, action: BulkAction, job_filter: JobFilter) -> Response[Any]:
    narrowed = applicable(action, job_filter)
    seen_seq = writer.reader.live.last_seq  # (a job submitted a moment ago is matched too)
    ids, more = await matching(history, narrowed, seen_seq)  # (the bound, checked before anything is stored)
    if more:
        raise Invalid(f"more than {MAX_BULK:,} jobs match; narrow the filter (type, created_before, owner, tag) and "
                      "run it in parts", title="Too many jobs for one operation", key="status", source="query",
                      matched=len(ids), limit=MAX_BULK)
    operation, _ = await operations.start(action, narrowed, seen_seq, request.headers.get("idempotency-key"))
    return Response(view(operation), status_code=202, headers={
        "Location": f"/api/operations/{operation.id}", "Preference-Applied": "respond-async"})


@post("/api/jobs/{job_id:str}/cancel", status_code=202, summary="Cancel a job", errors=(404, 409, 503),
      description="202 when the request is recorded: a pending job ends `cancelled` at once, a running one "
      "as soon as its processor has stopped the work. 409 when the job already ended.")
async def cancel_job(request: Request[Any, Any, Any], writer: NamedDependency[JobWriter],
                     job_id: FromPath[str]) -> Response[dict[str, str]]:
    if scope_of(request.scope) is not None:  # (a token that cancels its own jobs: another is not found)
        check_visible(request.scope, await writer.reader.find(job_id))
    status = await writer.cancel(job_id)
    return Response({"id": job_id, "status": status}, status_code=202)


@post("/api/jobs/delete", status_code=200, summary="Delete every ended job a filter matches from history",
      errors=(400, 409, 422, 503),
      description="`status` (required: the ended statuses to delete, e.g. `failed,cancelled`; live ones match nothing) "
      "and the filters of `GET /api/jobs` (`type`, `owner`, `tag`, `created_*`, `finished_*`, `error`, "
      "`params.<name>=`). Each job is deleted as `DELETE /api/jobs/{id}` would; at most 10,000 a request: `more: "
      "true` when others remain (ask again). `{\"matched\", \"deleted\", \"more\"}`. `dry_run=true`: only count. "
      "With `Accept: text/event-stream`: its progress as events (`matched`, `progress` {done, matched}, `done`). "
      + _ASYNC, responses={202: ResponseSpec(OperationView, description="`Prefer: respond-async`: the operation is "
                                              "stored; a conductor runs it (follow it at its `links`)",
                                              generate_examples=False)})
async def delete_jobs(
    request: Request[Any, Any, Any],
    writer: NamedDependency[JobWriter],
    history: NamedDependency[HistoryClient],
    operations: NamedDependency[Operations],
    status: FromQuery[str],
    type: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    created_after: FromQuery[float | None] = None,
    created_before: FromQuery[float | None] = None,
    finished_after: FromQuery[float | None] = None,
    finished_before: FromQuery[float | None] = None,
    error: FromQuery[str | None] = None,
    dry_run: FromQuery[bool] = False,
) -> BulkDeleted | Response[Any]:
    job_filter = search.parse_filter(request.query_params, status=status, job_type=type, created_after=created_after,
                                     created_before=created_before, finished_after=finished_after,
                                     finished_before=finished_before, error=error, owner=owner, tag=tag)
    if _wants_operation(request) and not dry_run:
        return await _start_operation(request, writer, history, operations, "delete", job_filter)
    if _wants_progress(request) and not dry_run:
        return await progress_stream(lambda progress: delete_matching(writer, history, job_filter, progress=progress))
    return await delete_matching(writer, history, job_filter, dry_run)  # (HistoryUnavailable: 503, nothing deleted)


@delete("/api/jobs/{job_id:str}", status_code=204, summary="Delete an ended job from history", errors=(404, 409, 503),
        description="The job, its log lines' record and its stored timeline leave the history; it is `404` from then "
        "on (its events stay in the job stream until they age out of its retention). 409 for a job that has not "
        "ended: cancel it first.")
async def delete_job(writer: NamedDependency[JobWriter], job_id: FromPath[str]) -> None:
    await writer.delete(job_id)


@get("/api/stats/counts", summary="Jobs per status and per type, over all history kept", errors=(503,),
     description="`{\"total\", \"by_status\": {status: n}, \"by_type\": {type: {status: n}}}`; `owner` (any of "
     "them) and `tag` (every one of them) count only those jobs (a token made for an owner or tags counts only "
     "its own). 503 while the history service is away.")
async def job_counts(request: Request[Any, Any, Any], history: NamedDependency[HistoryClient],
                     owner: FromQuery[str | None] = None, tag: FromQuery[str | None] = None) -> dict[str, Any]:
    narrowed = search.parse_filter(request.query_params, status=None, job_type=None, created_after=None,
                                   created_before=None, finished_after=None, finished_before=None, error=None,
                                   owner=owner, tag=tag)
    owners, tags = _in_scope(request, narrowed.owners, narrowed.tags)
    return await search.counts(history, owners, tags)


def _in_scope(request: Request[Any, Any, Any], owners: list[str], tags: list[str]) -> tuple[list[str], list[str]]:
    """The owners and tags asked for, narrowed to a scoped token's (it sees its own jobs only)."""
    limited = scope_of(request.scope)
    if limited is not None and limited.lists:
        owners = [limited.owner] if limited.owner is not None else owners
        tags = sorted(set(tags) | limited.tags)
    return owners, tags


@get("/api/stats/activity", summary="Jobs ended per minute by outcome, run-time percentiles per type", errors=(503,),
     description="`window` = `hour` (1-minute buckets), `day` (15 minutes) or `week` (1 hour); `type` narrows it "
     "to one job type. `{\"buckets\": [{\"start\", \"completed\", \"failed\", \"cancelled\", \"expired\"}], "
     "\"durations\": [{\"type\", \"count\", \"p50_s\", \"p90_s\", \"p99_s\", \"max_s\"}]}` — run time is the "
     "end minus the last attempt's start; percentiles are within 10 %. `owner` (any of them) and `tag` (every "
     "one of them) narrow it to those jobs (a token made for an owner or tags sees only its own).")
async def job_activity(request: Request[Any, Any, Any], history: NamedDependency[HistoryClient],
                       window: FromQuery[str] = "hour", type: FromQuery[str | None] = None,
                       owner: FromQuery[str | None] = None, tag: FromQuery[str | None] = None) -> dict[str, Any]:
    narrowed = search.parse_filter(request.query_params, status=None, job_type=None, created_after=None,
                                   created_before=None, finished_after=None, finished_before=None, error=None,
                                   owner=owner, tag=tag)
    owners, tags = _in_scope(request, narrowed.owners, narrowed.tags)
    return await search.activity(history, window, type, owners, tags)


@get("/api/jobs/{job_id:str}", summary="A job's current state", errors=(404, 503),
     description="`ETag` is the job's version; `If-None-Match` with it answers 304. `?wait=<s>` (at most JOBLINE_MAX_WAIT_S, 60) "
     "holds the request until the job changes from that version (or from now, without the header).")
async def get_job(
    request: Request[Any, Any, Any],
    live: NamedDependency[Live],
    job_id: FromPath[str],
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    wait: FromQuery[float] = 0.0,
) -> Response[Any]:
    job = check_visible(request.scope, await live.reader.find(job_id))
    if not 0 <= wait <= live.max_wait_s:
        raise Malformed(f"wait must be from 0 to {live.max_wait_s:g} seconds", title="Bad wait", key="wait",
                        source="query")
    version = etag(job)
    if wait and not job.is_terminal and (if_none_match is None or if_none_match == version):
        await wait_for_change(live, job, wait)
        version = etag(job)
    if if_none_match is not None and if_none_match == version:
        return Response(None, status_code=304, headers={"ETag": version})
    return Response(encoder.encode(job), media_type="application/json", headers={"ETag": version, "Cache-Control": "no-cache"})


@get("/api/jobs/{job_id:str}/timeline", summary="A job's whole recorded timeline", errors=(404, 503),
     description="Every stored event of the job in order: `{\"job_id\", \"events\": [{\"seq\", \"subject\", "
     "\"stored_at\", \"event\"}]}`.")
async def job_timeline(request: Request[Any, Any, Any], reader: NamedDependency[JobReader],
                       job_id: FromPath[str]) -> Response[bytes]:
    job = check_visible(request.scope, await reader.find(job_id))
    return Response(timeline_json(job_id, await reader.events(job)), media_type="application/json")


@get("/api/jobs/{job_id:str}/state", summary="The job as it was at a sequence or a moment", errors=(404, 503),
     description="`?at=` a stream sequence (`123`, `seq:123`) or a moment (ISO 8601, or unix seconds).")
async def job_state_at(request: Request[Any, Any, Any], reader: NamedDependency[JobReader], job_id: FromPath[str],
                       at: FromQuery[str]) -> Response[bytes]:
    try:
        seq, ts = parse_at(at)
    except ValueError as exc:
        raise Malformed(f"{at!r} is neither a sequence nor a time", title="Bad at", key="at", source="query") from exc
    job = check_visible(request.scope, await reader.find(job_id))
    folded = fold(decoded(await reader.events(job)), upto_seq=seq, upto_ts=ts)
    if folded is None:
        raise NotFound(f"job {job_id} did not exist at {at}", title="Not created yet")
    return Response(encoder.encode(folded), media_type="application/json")


@get("/api/types", summary="Job types served by the running processors")
async def list_types(catalogue: NamedDependency[Catalogue]) -> list[JobTypeInfo]:
    types = catalogue.types
    return [types[name] for name in sorted(types)]


job_handlers = [submit_job, list_jobs, cancel_jobs, cancel_job, delete_jobs, delete_job, job_counts, job_activity,
                get_job, job_timeline, job_state_at, list_types]
