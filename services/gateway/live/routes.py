"""HTTP routes of the live streams (Server-Sent Events): one job's events (or its replay), one
multiplexed stream per browser tab, a job's log lines, the services' own logs."""

from __future__ import annotations

import math
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import Stream

from jobline.contract.events import LogQuery
from jobline.contract.names import SERVICE_NAME_RE
from jobline.jobs.errors import Malformed
from jobline.jobs.reader import check_job_id
from jobline.jobs.timeline import decoded

from ..http.job_scope import check_visible, scope_of
from ..http.limits import MAX_LOG_PAGE, MAX_SEQ, MAX_WATCHED_JOBS
from ..jobs.replay import replay as replay_stream
from .event_stream import EventStream, StreamWatchdog
from .hub import WideFilter
from .logs import LEVELS, follow_job_logs, service_logs
from .multiplex import multiplexed
from .streams import Live, finished_before, job_events


@get("/api/jobs/{job_id:str}/events", summary="Live events of a job (Server-Sent Events)", errors=(404, 429, 503),
     description="A `snapshot` event with the job's state, then each later event with `id:` = its stream "
     "sequence and `event:` = its kind; the stream ends after the terminal event. With `Last-Event-ID` "
     "(or `?after=<seq>`): the events after that sequence, then live, with no gap and no duplicate; a "
     "cursor that is not usable gets an `event: reset` with a fresh snapshot. A client reconnecting after "
     "the end gets 204 (EventSource stops).",
     response_description="text/event-stream")
async def job_event_stream(
    request: Request[Any, Any, Any],
    live: NamedDependency[Live],
    job_id: FromPath[str],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: FromQuery[str | None] = None,
    replay: FromQuery[float | None] = None,
    from_: Annotated[float, QueryParameter(name="from")] = 0.0,
) -> Response[Any]:
    if (replay is not None and not 0 < replay <= 1000) or not (math.isfinite(from_) and from_ >= 0):
        raise Malformed("replay is a speed from >0 to 1000; from is seconds since creation, >= 0", title="Bad replay",
                        key="replay" if replay is not None and not 0 < replay <= 1000 else "from", source="query")
    job = check_visible(request.scope, await live.reader.find(job_id))
    if replay is not None:
        events = decoded(await live.reader.events(job))
        return EventStream(replay_stream(events, speed=replay, offset_s=from_, retry_ms=live.retry_ms), live.watchdog)
    cursor = last_event_id if last_event_id is not None else after  # a reconnect's header is newer
    if finished_before(job, cursor, live.read_model.last_seq):
        return Response(None, status_code=204)
    return EventStream(job_events(live, job, cursor), live.watchdog)


def _csv(raw: str | None) -> frozenset[str] | None:
    return frozenset(part.strip() for part in raw.split(",") if part.strip()) if raw else None


@get("/api/events", errors=(429,),
     summary="One multiplexed live stream (SSE): the firehose and/or chosen jobs with their log lines",
     description="`jobs=a,b` follows those jobs in full (with their log lines unless `logs=0`); `firehose=1` "
     "(the default without `jobs`) adds every other job's events, without log lines and with progress "
     "coalesced to a few updates per second, filtered by `type=` and `status=` (comma lists). Starts with "
     "a `snapshot` (`{jobs: [...], logs: {id: [...]}}`); ids are stream sequences; `Last-Event-ID` resumes "
     "with no gap or duplicate, or sends `reset` when it cannot.",
     response_description="text/event-stream")
async def events_stream(
    request: Request[Any, Any, Any],
    live: NamedDependency[Live],
    jobs_param: Annotated[str | None, QueryParameter(name="jobs")] = None,
    firehose: FromQuery[bool | None] = None,
    logs: FromQuery[bool] = True,
    type: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: FromQuery[str | None] = None,
) -> Stream:
    watched = _csv(jobs_param) or frozenset()
    if len(watched) > MAX_WATCHED_JOBS:
        raise Malformed(f"follow at most {MAX_WATCHED_JOBS} jobs on one stream", title="Too many jobs", key="jobs",
                        source="query")
    for job_id in watched:
        check_job_id(job_id)
    limited = scope_of(request.scope)
    if limited is not None and limited.lists:  # (ids alone cannot tell an owner's or a tag's jobs)
        for job_id in watched:
            check_visible(request.scope, await live.reader.find(job_id))
    try:
        wide = WideFilter.parse(type, status) if (firehose if firehose is not None else not watched) else None
    except ValueError as exc:
        raise Malformed(str(exc), title="Bad filter", key=str(exc).split(":")[0], source="query") from None
    cursor = last_event_id if last_event_id is not None else after
    return EventStream(multiplexed(live, watched, wide, logs, cursor), live.watchdog)


@get("/api/jobs/{job_id:str}/logs", summary="A job's log lines", errors=(404, 429, 503),
     description="JSON: a page of the logsink's store, by log stream sequence (`after`, `limit`). `?follow=1`: "
     "Server-Sent Events, `event: logged` per line with `id:` = its job stream sequence — the whole "
     "history (old lines from the logsink's store, which outlives the stream's retention), then live "
     "with no gap at the seam, ending with the job's terminal event; `Last-Event-ID` resumes.")
async def job_logs(
    request: Request[Any, Any, Any],
    live: NamedDependency[Live],
    job_id: FromPath[str],
    after: FromQuery[int] = 0,
    limit: FromQuery[int] = 500,
    follow: FromQuery[bool] = False,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> Response[Any]:
    if not 1 <= limit <= MAX_LOG_PAGE or not 0 <= after <= MAX_SEQ:  # (also with follow: the same query)
        raise Malformed(f"limit is 1 to {MAX_LOG_PAGE}, after a sequence from 0", title="Bad page",
                        key="limit" if not 1 <= limit <= MAX_LOG_PAGE else "after", source="query")
    job = check_visible(request.scope, await live.reader.find(job_id))
    if follow:
        if finished_before(job, last_event_id, live.read_model.last_seq):
            return Response(None, status_code=204)  # it saw the end: EventSource stops
        return EventStream(follow_job_logs(live, job, last_event_id), live.watchdog)
    return Response(await live.logs.page(LogQuery(job_id=job_id, after_seq=after, limit=limit)))


@get("/api/logs/stream", summary="The services' own log records, live (SSE)", errors=(429,),
     description="Recent history (from the logsink), then live: `event: log` per record, `id:` = log stream "
     "sequence. `service=` one service (gateway, processor, logsink); `level=` the minimum level.")
async def service_log_stream(
    live: NamedDependency[Live],
    watchdog: NamedDependency[StreamWatchdog],
    service: FromQuery[str | None] = None,
    level: FromQuery[str] = "debug",
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> Stream:
    if service is not None and not SERVICE_NAME_RE.fullmatch(service):
        raise Malformed("service is a name like gateway, processor or logsink", title="Bad service", key="service",
                        source="query")
    if level.lower() not in LEVELS:
        raise Malformed(f"level is one of {', '.join(LEVELS)}", title="Bad level", key="level", source="query")
    return EventStream(service_logs(live, service, LEVELS[level.lower()], last_event_id), watchdog)


stream_handlers = [job_event_stream, events_stream, job_logs, service_log_stream]
