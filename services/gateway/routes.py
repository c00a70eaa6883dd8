"""HTTP routes: thin handlers over the functions in `core`."""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobline.contract.events import JobScheduled, JobTypeInfo, LogQuery, encoder
from jobline.contract.names import SERVICE_NAME_RE
from jobline.contract.vocabulary import as_javascript

from . import core as jobs
from . import search
from .auth import SESSION_COOKIE, Auth
from .event_stream import EventStream
from .forms import fill_files, read_form, redirect_target, submission_of, wants_html
from .hub import WideFilter
from .idempotency import fingerprint
from .limits import MAX_JOB_BYTES, MAX_LOG_PAGE, MAX_SEQ, MAX_WATCHED_JOBS
from .logs import LEVELS, follow_job_logs, service_logs
from .multiplex import multiplexed
from .objects import (
    INLINE_TYPES,
    RangeNotSatisfiable,
    Upload,
    UploadEmpty,
    UploadStalled,
    UploadTooLarge,
    byte_range,
    delete_upload,
    open_artifact,
    safe_type,
    sliced,
    store_upload,
    upload_info,
)
from .problems import Problem
from .replay import decoded, fold, parse_at, timeline_json
from .replay import replay as replay_stream
from .search import JobPage
from .sent_json import SentJSON
from .timeline import last_event_seq
from .websocket import ws_endpoint

VOCABULARY_JS = as_javascript()



def _core(request: Request[Any, Any, Any]) -> jobs.Core:
    # From the request, not an injected `State`: Litestar copies the app state into a new `State`
    # for each request that asks for one (~10 µs of every submission).
    return request.app.state.core  # type: ignore[no-any-return]


class Accepted(msgspec.Struct):
    id: str
    status: str
    links: dict[str, str]


@post("/api/jobs", status_code=202, summary="Submit a job", request_max_body_size=MAX_JOB_BYTES,
      description="With an `Idempotency-Key` header, repeating the request (also concurrently, also days "
      "later within JOBLINE_IDEMPOTENCY_TTL_S) returns the same job instead of creating another.",
      responses={202: ResponseSpec(Accepted, description="Stored: the job runs as soon as a processor takes it",
                                   generate_examples=False)})
async def submit_job(
    request: Request[Any, Any, Any],
    data: JSONBody[jobs.JobSubmission],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> SentJSON:
    core = _core(request)
    event, fresh = await jobs.submit(core, data, idempotency_key)
    job_links = jobs.links(event.job_id)
    headers = [(b"location", job_links["self"].encode())]
    # What a new job is when accepted (a processor may have taken it by now: GET says).
    status = "scheduled" if isinstance(event, JobScheduled) else "pending"
    if not fresh:
        headers.append((b"idempotent-replayed", b"true"))
        current = core.read_model.get(event.job_id)
        status = current.status if current else status
    accepted = Accepted(id=event.job_id, status=status, links=job_links)
    return SentJSON(202, encoder.encode(accepted), headers)

class FormAccepted(msgspec.Struct):
    id: str
    status: str
    links: dict[str, str]
    uploads: list[Upload]


@post("/api/jobs/form", status_code=202, summary="Submit a job with its files: a multipart form",
      request_max_body_size=None,
      description="What `POST /api/jobs` does with a `multipart/form-data` body (it is routed here). Fields: `type` "
      "(required), `params` (a JSON object, optional), any other text field is the param of its name (converted "
      "by the type's params schema: `height=720` is a number), `timeout_s`, `max_attempts`, `queue_timeout_s`, "
      "`webhook_url` as in JSON, `idempotency_key` (or the header), `redirect` (where a browser goes next: a path "
      "here or a page on an origin in JOBLINE_CORS_ORIGINS; `{id}` is the job id). Each file part is streamed "
      "into the object store as an upload whose id becomes the param of its field name. Nothing is stored "
      "unless the whole form is good (400, 413 beyond JOBLINE_MAX_UPLOAD_BYTES per file, 408 when the client "
      "stops sending). A browser navigating (Accept: text/html) is redirected (303) to `redirect` or the job's "
      "page; others get the JSON answer with the uploads. With API tokens, a page without script authenticates "
      "with `?access_token=` from `POST /api/form-tokens`.",
      responses={202: ResponseSpec(FormAccepted, description="Stored, with its uploads", generate_examples=False)})
async def submit_form(
    request: Request[Any, Any, Any],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[Any]:
    core = _core(request)
    settings = core.settings
    try:
        form = await read_form(request.stream(), request.headers.get("content-type", ""),
                               file_limit=settings.max_upload_bytes, idle_timeout_s=settings.upload_idle_timeout_s)
    except UploadTooLarge as exc:
        raise Problem(413, "Upload too large", str(exc), headers={"Connection": "close"}) from exc
    except UploadStalled as exc:
        raise Problem(408, "Upload stalled", str(exc), headers={"Connection": "close"}) from exc
    stored: list[Upload] = []
    try:
        job_type = (form.first("type") or "").strip()
        submission = submission_of(form, core.catalogue.types.get(job_type))
        key = idempotency_key if idempotency_key is not None else (form.first("idempotency_key") or None)
        fill_files(submission, form, [jobs.new_job_id() for _ in form.files])  # (ids to be: the schema wants some)
        await jobs.validate(core, submission, key)
        redirect = form.first("redirect")
        origins = frozenset(o.lower() for o in settings.cors_origins)
        if redirect:
            redirect_target(redirect, "x", origins)  # refused before anything is stored
        request_print = fingerprint(submission_of(form, core.catalogue.types.get(job_type)))  # (without file ids)
        for _, spooled in form.files:
            stored.append(await spooled.store(core.objects, jobs.new_job_id()))
        fill_files(submission, form, [item.id for item in stored])
        event, fresh = await jobs.submit(core, submission, key, request_print)
    except BaseException:
        for item in stored:
            await delete_upload(core.objects, item.id)
        raise
    finally:
        form.close()
    if not fresh:  # the key's job exists (with its own files): these are not needed
        for item in stored:
            await delete_upload(core.objects, item.id)
        stored = []
    job_links = jobs.links(event.job_id)
    if wants_html(request.headers.get("accept", "")):
        target = redirect_target(redirect, event.job_id, origins) if redirect else f"/#/jobs/{event.job_id}"
        return Response(None, status_code=303, headers={"Location": target})
    accepted = FormAccepted(id=event.job_id, status="scheduled" if isinstance(event, JobScheduled) else "pending",
                            links=job_links, uploads=stored)
    return Response(accepted, status_code=202, headers={"Location": job_links["self"]})


@get("/api/jobs", summary="List and search jobs over all history, newest first",
     description="Filters (all optional, combined with AND): `status` and `type` (comma lists), `created_after`/"
     "`created_before` and `finished_after`/`finished_before` (unix seconds), `error` (text in the job's error, "
     "case-insensitive), and any `params.<name>=<value>` or `result.<name>=<value>` (nested names with dots; the "
     "value is JSON when it parses — `360`, `true` — else text). `before` is the cursor from `next_before`: "
     "stable while new jobs arrive. Answered by the history service; while it is away, a plain list comes from "
     "this gateway's memory with `partial: true`, and a search answers 503.",
     responses={200: ResponseSpec(JobPage, description="A page of jobs", generate_examples=False)})
async def list_jobs(
    request: Request[Any, Any, Any],
    status: FromQuery[str | None] = None,
    type: FromQuery[str | None] = None,
    before: FromQuery[int | None] = None,
    limit: FromQuery[int] = 50,
    created_after: FromQuery[float | None] = None,
    created_before: FromQuery[float | None] = None,
    finished_after: FromQuery[float | None] = None,
    finished_before: FromQuery[float | None] = None,
    error: FromQuery[str | None] = None,
) -> Response[bytes]:
    if before is not None and not 0 <= before <= MAX_SEQ:
        raise Problem(400, "Bad cursor", "before is a cursor from next_before (>= 0)",
                      errors=[{"key": "before", "source": "query"}])
    job_filter = search.parse_filter(request.query_params, status=status, job_type=type, created_after=created_after,
                                     created_before=created_before, finished_after=finished_after,
                                     finished_before=finished_before, error=error)
    body = await search.list_jobs(_core(request), job_filter, before=before, limit=limit)
    return Response(body, media_type="application/json")


@post("/api/jobs/{job_id:str}/cancel", status_code=202, summary="Cancel a job",
      description="202 when the request is recorded: a pending job ends `cancelled` at once, a running one "
      "as soon as its processor has stopped the work. 409 when the job already ended.")
async def cancel_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[dict[str, str]]:
    status = await jobs.cancel(_core(request), job_id)
    return Response({"id": job_id, "status": status}, status_code=202)


@get("/api/stats/counts", summary="Jobs per status and per type, over all history kept",
     description="`{\"total\", \"by_status\": {status: n}, \"by_type\": {type: {status: n}}}`; 503 while the "
     "history service is away.")
async def job_counts(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await search.counts(_core(request))


@get("/api/stats/activity", summary="Jobs ended per minute by outcome, run-time percentiles per type",
     description="`window` = `hour` (1-minute buckets), `day` (15 minutes) or `week` (1 hour); `type` narrows it "
     "to one job type. `{\"buckets\": [{\"start\", \"completed\", \"failed\", \"cancelled\", \"expired\"}], "
     "\"durations\": [{\"type\", \"count\", \"p50_s\", \"p90_s\", \"p99_s\", \"max_s\"}]}` — run time is the "
     "end minus the last attempt's start; percentiles are within 10 %.")
async def job_activity(request: Request[Any, Any, Any], window: FromQuery[str] = "hour",
                       type: FromQuery[str | None] = None) -> dict[str, Any]:
    return await search.activity(_core(request), window, type)


@get("/api/jobs/{job_id:str}", summary="A job's current state",
     description="`ETag` is the job's version; `If-None-Match` with it answers 304. `?wait=<s>` (at most JOBLINE_MAX_WAIT_S, 60) "
     "holds the request until the job changes from that version (or from now, without the header).")
async def get_job(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    wait: FromQuery[float] = 0.0,
) -> Response[Any]:
    core = _core(request)
    job = await jobs.find_job(core, job_id)
    if not 0 <= wait <= core.settings.max_wait_s:
        raise Problem(400, "Bad wait", f"wait must be from 0 to {core.settings.max_wait_s:g} seconds",
                      errors=[{"key": "wait", "source": "query"}])
    version = jobs.etag(job)
    if wait and not job.is_terminal and (if_none_match is None or if_none_match == version):
        await jobs.wait_for_change(core, job, wait)
        version = jobs.etag(job)
    if if_none_match is not None and if_none_match == version:
        return Response(None, status_code=304, headers={"ETag": version})
    return Response(encoder.encode(job), media_type="application/json", headers={"ETag": version, "Cache-Control": "no-cache"})


@get("/api/jobs/{job_id:str}/timeline", summary="A job's whole recorded timeline",
     description="Every stored event of the job in order: `{\"job_id\", \"events\": [{\"seq\", \"subject\", "
     "\"stored_at\", \"event\"}]}`.")
async def job_timeline(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[bytes]:
    core = _core(request)
    job = await jobs.find_job(core, job_id)
    events = await jobs.stored_events(core, job)
    return Response(timeline_json(job_id, events), media_type="application/json")


@get("/api/jobs/{job_id:str}/state", summary="The job as it was at a sequence or a moment",
     description="`?at=` a stream sequence (`123`, `seq:123`) or a moment (ISO 8601, or unix seconds).")
async def job_state_at(request: Request[Any, Any, Any], job_id: FromPath[str], at: FromQuery[str]) -> Response[bytes]:
    core = _core(request)
    try:
        seq, ts = parse_at(at)
    except ValueError as exc:
        raise Problem(400, "Bad at", f"{at!r} is neither a sequence nor a time",
                      errors=[{"key": "at", "source": "query"}]) from exc
    job = await jobs.find_job(core, job_id)
    events = decoded(await jobs.stored_events(core, job))
    folded = fold(events, upto_seq=seq, upto_ts=ts)
    if folded is None:
        raise Problem(404, "Not created yet", f"job {job_id} did not exist at {at}")
    return Response(encoder.encode(folded), media_type="application/json")


@get(
    "/api/jobs/{job_id:str}/events",
    summary="Live events of a job (Server-Sent Events)",
    description="A `snapshot` event with the job's state, then each later event with `id:` = its stream "
    "sequence and `event:` = its kind; the stream ends after the terminal event. With `Last-Event-ID` "
    "(or `?after=<seq>`): the events after that sequence, then live, with no gap and no duplicate; a "
    "cursor that is not usable gets an `event: reset` with a fresh snapshot. A client reconnecting after "
    "the end gets 204 (EventSource stops).",
    response_description="text/event-stream",
)
async def job_events(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: FromQuery[str | None] = None,
    replay: FromQuery[float | None] = None,
    from_: Annotated[float, QueryParameter(name="from")] = 0.0,
) -> Response[Any]:
    core = _core(request)
    if (replay is not None and not 0 < replay <= 1000) or not (math.isfinite(from_) and from_ >= 0):
        raise Problem(400, "Bad replay", "replay is a speed from >0 to 1000; from is seconds since creation, >= 0",
                      errors=[{"key": "replay" if replay is not None and not 0 < replay <= 1000 else "from",
                               "source": "query"}])
    job = await jobs.find_job(core, job_id)
    if replay is not None:
        events = decoded(await jobs.stored_events(core, job))
        return EventStream(replay_stream(events, speed=replay, offset_s=from_, retry_ms=core.settings.sse_retry_ms),
                           core.watchdog)
    cursor = last_event_id if last_event_id is not None else after  # a reconnect's header is newer
    if jobs.finished_before(job, cursor, core.read_model.last_seq):
        return Response(None, status_code=204)
    return EventStream(jobs.job_events(core, job, cursor), core.watchdog)


def _csv(raw: str | None) -> frozenset[str] | None:
    return frozenset(part.strip() for part in raw.split(",") if part.strip()) if raw else None


@get(
    "/api/events",
    summary="One multiplexed live stream (SSE): the firehose and/or chosen jobs with their log lines",
    description="`jobs=a,b` follows those jobs in full (with their log lines unless `logs=0`); `firehose=1` "
    "(the default without `jobs`) adds every other job's events, without log lines and with progress "
    "coalesced to a few updates per second, filtered by `type=` and `status=` (comma lists). Starts with "
    "a `snapshot` (`{jobs: [...], logs: {id: [...]}}`); ids are stream sequences; `Last-Event-ID` resumes "
    "with no gap or duplicate, or sends `reset` when it cannot.",
    response_description="text/event-stream",
)
async def events_stream(
    request: Request[Any, Any, Any],
    jobs_param: Annotated[str | None, QueryParameter(name="jobs")] = None,
    firehose: FromQuery[bool | None] = None,
    logs: FromQuery[bool] = True,
    type: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: FromQuery[str | None] = None,
) -> Stream:
    core = _core(request)
    watched = _csv(jobs_param) or frozenset()
    if len(watched) > MAX_WATCHED_JOBS:
        raise Problem(400, "Too many jobs", f"follow at most {MAX_WATCHED_JOBS} jobs on one stream",
                      errors=[{"key": "jobs", "source": "query"}])
    for job_id in watched:
        jobs.check_job_id(job_id)
    try:
        wide = WideFilter.parse(type, status) if (firehose if firehose is not None else not watched) else None
    except ValueError as exc:
        raise Problem(400, "Bad filter", str(exc), errors=[{"key": str(exc).split(":")[0], "source": "query"}]) from None
    cursor = last_event_id if last_event_id is not None else after
    return EventStream(multiplexed(core, watched, wide, logs, cursor), core.watchdog)


@get("/api/jobs/{job_id:str}/logs", summary="A job's log lines",
     description="JSON: a page of the logsink's store, by log stream sequence (`after`, `limit`). `?follow=1`: "
     "Server-Sent Events, `event: logged` per line with `id:` = its job stream sequence — the whole "
     "history (old lines from the logsink's store, which outlives the stream's retention), then live "
     "with no gap at the seam, ending with the job's terminal event; `Last-Event-ID` resumes.")
async def job_logs(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    after: FromQuery[int] = 0,
    limit: FromQuery[int] = 500,
    follow: FromQuery[bool] = False,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> Response[Any]:
    core = _core(request)
    if not 1 <= limit <= MAX_LOG_PAGE or not 0 <= after <= MAX_SEQ:  # (also with follow: the same query)
        raise Problem(400, "Bad page", f"limit is 1 to {MAX_LOG_PAGE}, after a sequence from 0",
                      errors=[{"key": "limit" if not 1 <= limit <= MAX_LOG_PAGE else "after", "source": "query"}])
    job = await jobs.find_job(core, job_id)
    if follow:
        if jobs.finished_before(job, last_event_id, core.read_model.last_seq):
            return Response(None, status_code=204)  # it saw the end: EventSource stops
        return EventStream(follow_job_logs(core, job, last_event_id), core.watchdog)
    page = await jobs.log_history(core, LogQuery(job_id=job_id, after_seq=after, limit=limit))
    return Response(page)


@get("/api/logs/stream", summary="The services' own log records, live (SSE)",
     description="Recent history (from the logsink), then live: `event: log` per record, `id:` = log stream "
     "sequence. `service=` one service (gateway, processor, logsink); `level=` the minimum level.")
async def service_log_stream(
    request: Request[Any, Any, Any],
    service: FromQuery[str | None] = None,
    level: FromQuery[str] = "debug",
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> Stream:
    core = _core(request)
    if service is not None and not SERVICE_NAME_RE.fullmatch(service):
        raise Problem(400, "Bad service", "service is a name like gateway, processor or logsink",
                      errors=[{"key": "service", "source": "query"}])
    if level.lower() not in LEVELS:
        raise Problem(400, "Bad level", f"level is one of {', '.join(LEVELS)}", errors=[{"key": "level", "source": "query"}])
    return EventStream(service_logs(core, service, LEVELS[level.lower()], last_event_id), core.watchdog)


@post("/api/uploads", status_code=201, summary="Upload a job input file", request_max_body_size=None,
      description="The raw request body is the file (`Content-Type` is kept; `?filename=` names it); not a "
      "multipart form (415). It is streamed into the object store; reference the returned id in a job's params. "
      "400 for an empty body, 408 when the client stops sending for JOBLINE_UPLOAD_IDLE_TIMEOUT_S, 413 beyond "
      "JOBLINE_MAX_UPLOAD_BYTES; nothing is stored then.")
async def upload(request: Request[Any, Any, Any], filename: FromQuery[str] = "upload") -> Response[Upload]:
    core = _core(request)
    limit = core.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Upload too large", f"the upload is {declared} bytes; the limit is {limit}")
    upload_id = jobs.new_job_id()
    content_type = request.headers.get("content-type", "application/octet-stream")
    try:
        stored = await store_upload(core.objects, upload_id, request.stream(), limit=limit,
                                    filename=filename[:255], content_type=content_type,
                                    idle_timeout_s=core.settings.upload_idle_timeout_s)
    except UploadTooLarge as exc:
        raise Problem(413, "Upload too large", str(exc)) from exc
    except UploadEmpty as exc:
        raise Problem(400, "Empty upload", str(exc)) from exc
    except UploadStalled as exc:
        raise Problem(408, "Upload stalled", str(exc), headers={"Connection": "close"}) from exc
    return Response(stored, status_code=201, headers={"Location": f"/api/uploads/{upload_id}"})


@get("/api/uploads/{upload_id:str}", summary="An upload's size, checksum, name and type")
async def upload_metadata(request: Request[Any, Any, Any], upload_id: FromPath[str]) -> Upload:
    jobs.check_job_id(upload_id)
    stored = await upload_info(_core(request).objects, upload_id)
    if stored is None:
        raise Problem(404, "Upload not found", f"there is no upload {upload_id!r}")
    return stored


@get("/api/jobs/{job_id:str}/artifacts/{name:str}", summary="Download a job's result file")
async def artifact(request: Request[Any, Any, Any], job_id: FromPath[str], name: FromPath[str]) -> Response[Any]:
    core = _core(request)
    job = await jobs.find_job(core, job_id)
    info = next((a for a in job.artifacts if a.name == name), None)
    opened = await open_artifact(core.objects, job_id, name) if info is not None else None
    if info is None or opened is None:
        raise Problem(404, "Artifact not found", f"job {job_id} has no artifact {name!r}")
    size, etag, chunks = opened
    kind = safe_type(info.content_type)
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    headers = {"Content-Disposition": f'{disposition}; filename="{ascii_name}"', "Cache-Control": "private, max-age=3600",
               "Accept-Ranges": "bytes", "ETag": etag}
    if_range = request.headers.get("if-range")
    try:  # (a byte range: video seeking, and HLS playlists that address parts of one file)
        # If-Range naming another version (or a date: no Last-Modified is given) asks for the whole
        # file (RFC 9110, 13.1.5).
        wanted = byte_range(request.headers.get("range"), size) if if_range in (None, etag) else None
    except RangeNotSatisfiable:  # (the chunks were not asked for: nothing to close)
        raise Problem(416, "Range not satisfiable", f"the artifact has {size} bytes",
                      headers={"Content-Range": f"bytes */{size}"}) from None
    if wanted is None:
        return Stream(chunks, media_type=kind, headers={**headers, "Content-Length": str(size)})
    first, last = wanted
    return Stream(sliced(chunks, first, last), media_type=kind, status_code=206, headers={
        **headers, "Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{size}"})


@get("/vocabulary.js", summary="The words the web UI shares with the services", include_in_schema=False,
     media_type="text/javascript")
async def vocabulary() -> Response[str]:
    """Job statuses, event kinds and failure reasons as an ES module, built from the contract
    (services/contract/vocabulary.py): the UI imports them instead of copying them."""
    return Response(VOCABULARY_JS, media_type="text/javascript",  # (Litestar adds the charset)
                    headers={"Cache-Control": "no-cache"})


@get("/api/types", summary="Job types served by the running processors")
async def list_types(request: Request[Any, Any, Any]) -> list[JobTypeInfo]:
    types = _core(request).catalogue.types
    return [types[name] for name in sorted(types)]


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: str


@post("/api/session", status_code=204, summary="Log the browser in: an API token becomes a session cookie",
      description="With JOBLINE_API_TOKENS set, the web UI sends the token once; the gateway answers with an "
      "HttpOnly, SameSite=Strict cookie that fetch and EventSource then carry. 401 for a wrong token.")
async def create_session(request: Request[Any, Any, Any], data: JSONBody[SessionRequest]) -> Response[None]:
    auth: Auth = request.app.state.auth
    if not auth.enabled:
        return Response(None, status_code=204)
    token_id = auth.token_id(data.token)
    if token_id is None:
        raise Problem(401, "Unauthorized", "that is not a valid API token")
    return Response(None, status_code=204, cookies=[Cookie(
        key=SESSION_COOKIE, value=auth.session_cookie(token_id), httponly=True, samesite="strict", path="/",
        max_age=int(auth.session_ttl_s))])


@post("/api/stream-tokens", status_code=201, summary="A short-lived, read-only token for ?access_token=",
      description="For stream clients that can neither send headers nor keep cookies. Expires in 5 minutes.")
async def create_stream_token(request: Request[Any, Any, Any]) -> dict[str, Any]:
    auth: Auth = request.app.state.auth
    identity = request.scope.get("state", {}).get("identity")
    if not auth.enabled or identity is None:
        raise Problem(409, "No tokens", "this gateway has no API tokens; streams need no token")
    return {"token": auth.stream_token(identity), "expires_in": int(auth.stream_token_ttl_s)}


@post("/api/form-tokens", status_code=201, summary="A token that lets a page's plain HTML form submit one kind of request",
      description="For `<form action=\".../api/jobs?access_token=...\">` on a page that has no script or must not "
      "hold the API token: good only for POST /api/jobs (a form), for JOBLINE_FORM_TOKEN_TTL_S (an hour). "
      "409 when the gateway has no API tokens (forms need none).")
async def create_form_token(request: Request[Any, Any, Any]) -> dict[str, Any]:
    auth: Auth = request.app.state.auth
    identity = request.scope.get("state", {}).get("identity")
    if not auth.enabled or identity is None:
        raise Problem(409, "No tokens", "this gateway has no API tokens; forms need no token")
    return {"token": auth.form_token(identity), "expires_in": int(auth.form_token_ttl_s)}


@get("/metrics", summary="Prometheus metrics", media_type="text/plain")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    core = _core(request)
    core.metrics.open_streams.set(core.hub.listener_count)
    core.metrics.count_frames(core.hub.frames_queued)
    core.metrics.jobs.set(len(core.read_model))
    try:
        last = await last_event_seq(core.js, core.settings.names)
        core.metrics.stream_lag.set(max(last - core.read_model.last_seq, 0))
    except Exception:  # NATS away: report what is known
        pass
    return Response(generate_latest(core.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@get("/healthz", summary="Liveness", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: connected to NATS and the read model caught up")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    core = _core(request)
    ready = core.ready and core.nc.is_connected
    body = {"status": "ready" if ready else "not ready", "jobs": len(core.read_model), "last_seq": core.read_model.last_seq}
    return Response(body, status_code=200 if ready else 503)


route_handlers = [
    ws_endpoint, create_session, create_stream_token, create_form_token, metrics, events_stream, service_log_stream,
    submit_job, submit_form, list_jobs, cancel_job, upload, upload_metadata, artifact, job_counts, job_activity,
    get_job, job_timeline, job_state_at, job_events, job_logs, list_types, vocabulary, healthz, readyz,
]
