"""`AsyncClient`: Jobline's HTTP API from Python, with retries, resumable watches and typed events.

    async with AsyncClient() as jobline:
        job = await jobline.submit("transcode", {"upload": upload.id})
        final = await job.wait(timeout=600)

Retries: a request that never reached the gateway (connection refused, a connect timeout) is
retried whatever it is; one that may have reached it (a cut connection, 502/503/504, 429) only when
repeating it cannot do anything twice — reads, and submissions, which always carry an
`Idempotency-Key` (one is made when the caller gives none), so a retry finds the job the first try
made instead of creating another.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import httpx
import msgspec
from httpx_sse import aconnect_sse

from jobline.contract.events import TERMINAL_KINDS, JobEvent, LogRow, job_event_decoder
from jobline.contract.job_state import ArtifactInfo, JobState, apply
from jobline.contract.queues import QueueView
from jobline.contract.schedules import ScheduleView
from jobline.contract.vocabulary import Overlap

from .errors import ApiError, Unreachable, error_for
from .settings import ClientSettings
from .stream import RawEvent, ReplayEnded, Snapshot, StreamEvent, typed

# Never reached the gateway: safe to send again whatever the request was.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# May have reached it: only a request that cannot do anything twice is sent again.
CUT = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
UPLOAD_CHUNK = 256 * 1024
Retry = Literal["always", "not_sent"]


# (aliases: the clients' `list` method hides the builtin inside their class bodies)
LogRows = list[LogRow]
Artifacts = list[ArtifactInfo]
Timeline = list[tuple[int, JobEvent]]
TypeList = list[dict[str, Any]]
Schedules = list[ScheduleView]
Queues = list[QueueView]
AsyncJobs = list["AsyncJob"]

class Upload(msgspec.Struct, frozen=True):
    """A stored upload (`POST /api/uploads`): put its id in a job's params."""

    id: str
    size: int
    sha256: str
    filename: str
    content_type: str


class Accepted(msgspec.Struct, frozen=True):
    id: str
    status: str
    links: dict[str, str] = {}


_state_decoder = msgspec.json.Decoder(JobState)
_upload_decoder = msgspec.json.Decoder(Upload)
_accepted_decoder = msgspec.json.Decoder(Accepted)
_log_rows_decoder = msgspec.json.Decoder(list[LogRow])
_schedule_decoder = msgspec.json.Decoder(ScheduleView)
_schedules_decoder = msgspec.json.Decoder(list[ScheduleView])
_queue_decoder = msgspec.json.Decoder(QueueView)
_queues_decoder = msgspec.json.Decoder(list[QueueView])


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return ApiError(response.status_code, str(body.get("title") or response.reason_phrase),
                        str(body.get("detail") or ""), body)
    return ApiError(response.status_code, response.reason_phrase, response.text[:500])


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def submission_body(job_type: str, params: Mapping[str, Any] | None, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": job_type, "params": dict(params or {})}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class AsyncClient:
    def __init__(self, url: str | None = None, *, token: str | None = None, timeout_s: float | None = None,
                 retries: int | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = ClientSettings.resolve(url, token, timeout_s, retries)
        headers = {"User-Agent": "jobline-client"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        self._http = httpx.AsyncClient(base_url=self.settings.url, headers=headers, transport=transport,
                                       timeout=httpx.Timeout(self.settings.timeout_s))

    @property
    def url(self) -> str:
        return self.settings.url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing -------------------------------------------------------------------------
    def _delay(self, failures: int, hint: float | None = None) -> float:
        if hint is not None:
            return hint
        base: float = min(self.settings.backoff_s * 2.0 ** (failures - 1), self.settings.max_backoff_s)
        return base * random.uniform(0.5, 1.0)

    async def request(self, method: str, path: str, *, retry: Retry = "always", params: Any = None,
                      json: Any = None, content: Any = None, headers: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> httpx.Response:
        """One API request with the retry policy above; a 4xx (or a lasting 5xx) raises ApiError."""
        failures = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, content=content, headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
            except NOT_SENT as exc:
                if failures >= self.settings.retries:
                    raise Unreachable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            except CUT as exc:
                if retry != "always" or failures >= self.settings.retries:
                    raise Unreachable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES or retry != "always" \
                        or failures >= self.settings.retries:
                    raise _problem(response)
            failures += 1
            await asyncio.sleep(self._delay(failures, _retry_after(response)))

    async def get_json(self, path: str, **params: Any) -> Any:
        """GET an API path's JSON (query parameters that are None are left out)."""
        response = await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})
        return response.json()

    async def events(self, path: str, *, last_event_id: int | None = None,
                     until: frozenset[str] | None = None) -> AsyncIterator[RawEvent]:
        """The Server-Sent Events of `path`. A dropped connection is resumed with `Last-Event-ID`
        and nothing is yielded twice. With `until`, a stream that ends before an event of one of
        those kinds is reopened (a gateway restarting closes it cleanly); 204 ends it for good."""
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(cursor)} if cursor is not None else {}
            hint: float | None = None
            try:
                async with aconnect_sse(self._http, "GET", path, headers=headers,
                                        timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as source:
                    response = source.response
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code not in RETRY_STATUSES or failures >= self.settings.retries:
                            raise _problem(response)
                        hint = _retry_after(response)
                        raise httpx.RemoteProtocolError("retry", request=response.request)
                    previous_id = ""
                    async for sse in source.aiter_sse():
                        if not sse.event and not sse.data:
                            continue  # a comment or heartbeat
                        # A frame without `id:` keeps the last one (the SSE rules): only a new id is its own.
                        own_id, previous_id = (sse.id if sse.id != previous_id else ""), sse.id
                        seq = int(own_id) if own_id.isdigit() else None
                        if seq is not None and cursor is not None and seq <= cursor \
                                and sse.event not in ("snapshot", "reset"):
                            continue  # already yielded before the connection dropped
                        if seq is not None:
                            cursor = seq
                        failures = 0
                        yield RawEvent(sse.event, sse.data.encode(), seq)
                        if until is not None and sse.event in until:
                            return
                    if until is None:
                        return
            except (*NOT_SENT, *CUT) as exc:
                if failures >= self.settings.retries:
                    raise Unreachable(f"GET {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            failures += 1
            await asyncio.sleep(self._delay(failures, hint))

    # --- jobs -----------------------------------------------------------------------------
    async def submit(self, type: str, params: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None,
                     timeout_s: float | None = None, max_attempts: int | None = None,
                     queue_timeout_s: float | None = None, webhook_url: str | None = None,
                     run_at: str | datetime | None = None, delay_s: float | None = None,
                     concurrency_key: str | None = None, priority: int | None = None) -> AsyncJob:
        """Submit a job; returns at once (the job runs on a processor). Retried safely: the
        `Idempotency-Key` (made here when not given) makes every retry find the same job.
        `run_at` (an aware datetime or RFC 3339 text) or `delay_s`: it is `scheduled` until then.
        `priority` 0 (the default) to 9: with a backlog, a higher priority starts first."""
        if isinstance(run_at, datetime):
            if run_at.tzinfo is None:
                raise ValueError("run_at needs a time zone (an aware datetime)")
            run_at = run_at.isoformat()
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        body = submission_body(type, params, timeout_s=timeout_s, max_attempts=max_attempts,
                               queue_timeout_s=queue_timeout_s, webhook_url=webhook_url, run_at=run_at,
                               delay_s=delay_s, concurrency_key=concurrency_key, priority=priority)
        response = await self.request("POST", "/api/jobs", json=body, headers={"Idempotency-Key": key})
        accepted = _accepted_decoder.decode(response.content)
        return AsyncJob(self, accepted.id, accepted=accepted)

    async def submit_many(self, specs: Iterable[Mapping[str, Any]], *, concurrency: int = 16) -> AsyncJobs:
        """Submit many jobs (each a mapping with `type`, `params` and any option of `submit`),
        `concurrency` requests at a time; the jobs come back in the order of `specs`."""
        gate = asyncio.Semaphore(concurrency)

        async def one(spec: Mapping[str, Any]) -> AsyncJob:
            options = {k: v for k, v in spec.items() if k not in ("type", "params")}
            async with gate:
                return await self.submit(spec["type"], spec.get("params"), **options)

        return list(await asyncio.gather(*(one(spec) for spec in specs)))

    def job(self, job_id: str) -> AsyncJob:
        """A handle on an existing job (no request is made)."""
        return AsyncJob(self, job_id)

    async def get(self, job_id: str) -> JobState:
        return _state_decoder.decode((await self.request("GET", f"/api/jobs/{job_id}")).content)

    async def list(self, *, status: str | Iterable[str] | None = None, type: str | Iterable[str] | None = None,
                   params: Mapping[str, Any] | None = None, result: Mapping[str, Any] | None = None,
                   page_size: int = 100, **filters: Any) -> AsyncIterator[JobState]:
        """Every job matching the filters, newest first, fetched a page at a time (a stable cursor).
        Other filters: created_after, created_before, finished_after, finished_before, error."""
        query = {k: v for k, v in filters.items() if v is not None}
        for name, value in (("status", status), ("type", type)):
            if value is not None:
                query[name] = value if isinstance(value, str) else ",".join(value)
        for root, fields in (("params", params), ("result", result)):
            for key, value in (fields or {}).items():
                query[f"{root}.{key}"] = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        while True:
            page = await self.get_json("/api/jobs", **query, limit=page_size)
            for row in page["jobs"]:
                yield msgspec.convert(row, JobState)
            if page.get("next_before") is None:
                return
            query["before"] = page["next_before"]

    async def cancel(self, job_id: str) -> str:
        """Ask for the job to be cancelled; returns its status after the request (409: already ended)."""
        answer = (await self.request("POST", f"/api/jobs/{job_id}/cancel", retry="not_sent")).json()
        return str(answer["status"])

    async def timeline(self, job_id: str) -> Timeline:
        """Every stored event of the job, in order, with its stream sequence."""
        rows = (await self.get_json(f"/api/jobs/{job_id}/timeline"))["events"]
        return [(int(row["seq"]), job_event_decoder.decode(msgspec.json.encode(row["event"]))) for row in rows]

    async def logs(self, job_id: str) -> LogRows:
        """All of the job's log lines (from the log store, which outlives the stream)."""
        rows: LogRows = []
        after = 0
        while True:
            page = await self.get_json(f"/api/jobs/{job_id}/logs", after=after, limit=5000)
            rows += _log_rows_decoder.decode(msgspec.json.encode(page["rows"]))
            if len(page["rows"]) < 5000:
                return rows
            after = page["last_seq"]

    async def artifacts(self, job_id: str, dest: str | os.PathLike[str] | None = None) -> Artifacts:
        """The job's result files; with `dest` (a folder), each is downloaded into it too."""
        artifacts = (await self.get(job_id)).artifacts
        if dest is not None:
            Path(dest).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - one local mkdir
            for artifact in artifacts:
                await self.download(job_id, artifact.name, dest)
        return artifacts

    async def download(self, job_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Save an artifact to `dest` (a file, or a folder to put it in under its own name)."""
        target = Path(dest)
        if target.is_dir():  # noqa: ASYNC240 - one local stat, not worth a thread
            target = target / name
        partial = target.with_name(target.name + ".part")
        failures = 0
        while True:
            try:
                async with self._http.stream("GET", f"/api/jobs/{job_id}/artifacts/{name}",
                                             timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _problem(response)
                    with partial.open("wb") as out:
                        async for chunk in response.aiter_bytes(UPLOAD_CHUNK):
                            out.write(chunk)
                partial.replace(target)
                return target
            except (*NOT_SENT, *CUT) as exc:
                failures += 1
                if failures > self.settings.retries:
                    raise Unreachable(f"artifact {name} of {job_id}: {exc}") from exc
                await asyncio.sleep(self._delay(failures))

    async def upload(self, file: str | os.PathLike[str] | IO[bytes], *, filename: str | None = None,
                     content_type: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None) -> Upload:
        """Stream a file into the object store; `progress(sent, total)` is called as it goes.
        Put the returned `id` in a job's params."""
        import mimetypes

        if isinstance(file, (str, os.PathLike)):
            path = Path(file)
            with path.open("rb") as opened:  # noqa: ASYNC230 - opening is instant; reads are chunked
                return await self.upload(opened, filename=filename or path.name, content_type=content_type,
                                         progress=progress)
        name = filename or Path(getattr(file, "name", "upload") or "upload").name
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        total: int | None = None
        start = 0
        try:
            start = file.tell()
            total = os.fstat(file.fileno()).st_size - start
        except (OSError, AttributeError, ValueError):
            pass

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while chunk := file.read(UPLOAD_CHUNK):
                sent += len(chunk)
                yield chunk
                if progress is not None:
                    progress(sent, total)

        headers = {"Content-Type": kind}
        if total is not None:
            headers["Content-Length"] = str(total)
        failures = 0
        while True:
            try:
                response = await self._http.post("/api/uploads", params={"filename": name}, content=body(),
                                                 headers=headers, timeout=httpx.Timeout(self.settings.timeout_s, read=None))
            except NOT_SENT as exc:
                failures += 1
                if failures > self.settings.retries:
                    raise Unreachable(f"upload {name}: {exc}") from exc
                file.seek(start)
                await asyncio.sleep(self._delay(failures))
                continue
            if response.status_code >= 400:
                raise _problem(response)
            return _upload_decoder.decode(response.content)

    async def types(self) -> TypeList:
        """The job types the processors serve, with their steps and params schema."""
        answer = await self.get_json("/api/types")
        return answer["types"] if isinstance(answer, dict) else answer  # type: ignore[no-any-return]

    # --- batches ---------------------------------------------------------------------------
    async def submit_batch(self, specs: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
                           ) -> dict[str, Any]:
        """Submit up to 10,000 jobs in one request (each a mapping as `submit` takes: `type`,
        `params`, options, and its own `idempotency_key`); `{"id", "jobs", "links"}`. All or
        nothing: a bad job raises ApiError naming its index. Retried safely (an Idempotency-Key
        is made when not given)."""
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        response = await self.request("POST", "/api/batches", json={"jobs": [dict(s) for s in specs]},
                                      headers={"Idempotency-Key": key})
        return response.json()  # type: ignore[no-any-return]

    async def submit_flow(self, flow: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit a flow (`{"job": {...}, "children": [{"name", "job", "depends_on", "children", ...}],
        "on_child_failure"}`: docs/api.md); `{"id", "jobs", "links"}`. Its id is its root job's:
        `wait(id)` waits for the whole flow. Retried safely (an Idempotency-Key is made when not given)."""
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        response = await self.request("POST", "/api/flows", json=dict(flow), headers={"Idempotency-Key": key})
        return response.json()  # type: ignore[no-any-return]

    async def flow(self, flow_id: str) -> dict[str, Any]:
        """The flow as a tree: each job's status and progress rolled up from its children's."""
        return await self.get_json(f"/api/flows/{flow_id}")  # type: ignore[no-any-return]

    async def cancel_flow(self, flow_id: str) -> dict[str, str]:
        return (await self.request("POST", f"/api/flows/{flow_id}/cancel", retry="not_sent")).json()  # type: ignore[no-any-return]

    async def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch's counts by status, progress, ETA, failures and jobs."""
        return await self.get_json(f"/api/batches/{batch_id}")  # type: ignore[no-any-return]

    async def cancel_batch(self, batch_id: str) -> dict[str, int]:
        return (await self.request("POST", f"/api/batches/{batch_id}/cancel", retry="not_sent")).json()  # type: ignore[no-any-return]

    def watch_batch(self, batch_id: str) -> AsyncIterator[RawEvent]:
        """The batch's live stream (snapshot, job_ended, progress, batch_completed), resumed after a cut."""
        return self.events(f"/api/batches/{batch_id}/events", until=frozenset({"batch_completed"}))

    # --- recurring schedules ----------------------------------------------------------------
    async def create_schedule(self, name: str, cron: str, type: str, params: Mapping[str, Any] | None = None, *,
                              timezone: str = "UTC", overlap: Overlap = Overlap.ALLOW, catchup_window_s: float | None = None,
                              paused: bool = False, **job_options: Any) -> ScheduleView:
        """A job of `type` at each fire time of `cron` (5 fields, or 6 with seconds first) in
        `timezone`; `job_options` as for `submit` (timeout_s, max_attempts, …). 409: name taken."""
        body = {"name": name, "cron": cron, "timezone": timezone, "overlap": overlap, "paused": paused,
                "catchup_window_s": catchup_window_s, "job": submission_body(type, params, **job_options)}
        response = await self.request("POST", "/api/schedules", json=body, retry="not_sent")
        return _schedule_decoder.decode(response.content)

    async def schedules(self) -> Schedules:
        return _schedules_decoder.decode((await self.request("GET", "/api/schedules")).content)

    async def schedule(self, name: str) -> ScheduleView:
        """The schedule with its next fire times and what it last did (jobs made, ticks missed)."""
        return _schedule_decoder.decode((await self.request("GET", f"/api/schedules/{name}")).content)

    async def pause_schedule(self, name: str) -> ScheduleView:
        return _schedule_decoder.decode((await self.request("POST", f"/api/schedules/{name}/pause")).content)

    async def resume_schedule(self, name: str) -> ScheduleView:
        return _schedule_decoder.decode((await self.request("POST", f"/api/schedules/{name}/resume")).content)

    async def delete_schedule(self, name: str) -> None:
        await self.request("DELETE", f"/api/schedules/{name}", retry="not_sent")

    # --- queue controls ----------------------------------------------------------------------
    async def queues(self) -> Queues:
        """Every job type's queue: paused or not, its limits, jobs waiting and running."""
        return _queues_decoder.decode((await self.request("GET", "/api/queues")).content)

    async def queue(self, job_type: str) -> QueueView:
        return _queue_decoder.decode((await self.request("GET", f"/api/queues/{job_type}")).content)

    async def pause_queue(self, job_type: str) -> QueueView:
        """Nothing new of the type starts (running jobs finish, submissions wait) until resumed."""
        return _queue_decoder.decode((await self.request("POST", f"/api/queues/{job_type}/pause")).content)

    async def resume_queue(self, job_type: str) -> QueueView:
        return _queue_decoder.decode((await self.request("POST", f"/api/queues/{job_type}/resume")).content)

    async def set_queue_limits(self, job_type: str, **limits: int | float | None) -> QueueView:
        """`concurrency=` (at once on the whole cluster), `key_concurrency=` (at once per
        `concurrency_key` given at submit), `rate_max=` starts per `rate_window_s=`
        (default 1 s); None lifts a limit, a limit not given keeps its value."""
        unknown = set(limits) - {"concurrency", "key_concurrency", "rate_max", "rate_window_s"}
        if unknown:
            raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
        return _queue_decoder.decode((await self.request("PUT", f"/api/queues/{job_type}", json=limits)).content)

    # --- watching -------------------------------------------------------------------------
    def watch(self, job_id: str) -> AsyncIterator[StreamEvent]:
        return self.job(job_id).watch()

    async def wait(self, job_id: str, timeout: float | None = None) -> JobState:
        return await self.job(job_id).wait(timeout)

    async def replay(self, job_id: str, speed: float = 10.0, from_s: float = 0.0) -> AsyncIterator[StreamEvent]:
        """The job's recorded timeline again, at `speed` times real time: a `Snapshot` as it was at
        `from_s` seconds after creation, the events with their original spacing, `ReplayEnded`."""
        async for raw in self.events(f"/api/jobs/{job_id}/events?replay={speed:g}&from={from_s:g}",
                                     until=frozenset({"replay_end"})):
            event = typed(raw)
            if event is not None:
                yield event


class AsyncJob:
    """One job: its id, its latest known `state` (kept current while watching), and what can be
    done with it."""

    def __init__(self, client: AsyncClient, job_id: str, accepted: Accepted | None = None):
        self.client = client
        self.id = job_id
        self.accepted = accepted
        self.state: JobState | None = None
        self.last_event_id: int | None = None  # resume point of watch()

    def __repr__(self) -> str:
        status = self.state.status if self.state else (self.accepted.status if self.accepted else "?")
        return f"<Job {self.id} {status}>"

    async def refresh(self) -> JobState:
        self.state = await self.client.get(self.id)
        return self.state

    async def watch(self) -> AsyncIterator[StreamEvent]:
        """The job's events as they happen, as the contract's types: a `Snapshot` first, then each
        event until the terminal one. Reconnects by itself (Last-Event-ID): no gap, no duplicate.
        Calling it again resumes where the last watch stopped."""
        async for raw in self.client.events(f"/api/jobs/{self.id}/events", last_event_id=self.last_event_id,
                                            until=TERMINAL_KINDS):
            event = typed(raw)
            if raw.id is not None:
                self.last_event_id = raw.id
            if event is None or isinstance(event, ReplayEnded):
                continue
            if isinstance(event, Snapshot):
                self.state = event.job
            elif self.state is not None and raw.id is not None:
                apply(self.state, event, raw.id)
            yield event
            if isinstance(event, Snapshot) and event.job.is_terminal:
                return  # it had ended before the stream opened: nothing follows (no reconnect for a 204)
        if self.state is None or not self.state.is_terminal:
            await self.refresh()  # the stream ended at once (204): the job had ended before

    async def wait(self, timeout: float | None = None) -> JobState:
        """The final state once the job completed; raises JobFailed, JobCancelled or JobExpired
        when it ended otherwise, TimeoutError after `timeout` seconds (the job goes on)."""
        async with asyncio.timeout(timeout):
            if self.state is None or not self.state.is_terminal:
                async for _ in self.watch():
                    pass
        assert self.state is not None
        if self.state.status != "completed":
            raise error_for(self.state)
        return self.state

    async def result(self, timeout: float | None = None) -> Any:
        """What the handler returned (waits like `wait`)."""
        return (await self.wait(timeout)).result

    async def cancel(self) -> str:
        return await self.client.cancel(self.id)

    async def logs(self) -> LogRows:
        return await self.client.logs(self.id)

    async def timeline(self) -> Timeline:
        return await self.client.timeline(self.id)

    async def artifacts(self, dest: str | os.PathLike[str] | None = None) -> Artifacts:
        return await self.client.artifacts(self.id, dest)

    async def download(self, name: str, dest: str | os.PathLike[str]) -> Path:
        return await self.client.download(self.id, name, dest)

    def replay(self, speed: float = 10.0, from_s: float = 0.0) -> AsyncIterator[StreamEvent]:
        return self.client.replay(self.id, speed, from_s)
