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
import builtins
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from jobline.contract.events import TERMINAL_KINDS, JobEvent, LogRow, job_event_decoder
from jobline.contract.job_state import ArtifactInfo, JobState, apply

from .controls import Controls
from .errors import Unreachable, error_for
from .files import Files
from .stream import ReplayEnded, Snapshot, StreamEvent, typed
from .transport import submission_body

# (aliases: the clients' `list` method hides the builtin inside their class bodies)
LogRows = list[LogRow]
Artifacts = list[ArtifactInfo]
Timeline = list[tuple[int, JobEvent]]
TypeList = list[dict[str, Any]]
AsyncJobs = list["AsyncJob"]


Progress = Callable[[int, int], None]  # a bulk action's (done, matched) as it goes


class Accepted(msgspec.Struct, frozen=True):
    id: str
    status: str
    links: dict[str, str] = {}


_state_decoder = msgspec.json.Decoder(JobState)
_accepted_decoder = msgspec.json.Decoder(Accepted)
_log_rows_decoder = msgspec.json.Decoder(list[LogRow])


class AsyncClient(Files, Controls):
    """Jobline's API: jobs (submit, look up, list, cancel, watch, wait), their files, batches,
    flows, schedules and queue controls (files.py, controls.py)."""

    # --- jobs -----------------------------------------------------------------------------
    async def submit(self, type: str, params: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None,
                     timeout_s: float | None = None, max_attempts: int | None = None,
                     queue_timeout_s: float | None = None, webhook_url: str | None = None,
                     run_at: str | datetime | None = None, delay_s: float | None = None,
                     concurrency_key: str | None = None, priority: int | None = None, owner: str | None = None,
                     tags: Iterable[str] | None = None, unique_key: str | None = None, unique_mode: str | None = None,
                     unique_window_s: float | None = None) -> AsyncJob:
        """Submit a job; returns at once (the job runs on a processor). Retried safely: the
        `Idempotency-Key` (made here when not given) makes every retry find the same job.
        `run_at` (an aware datetime or RFC 3339 text) or `delay_s`: it is `scheduled` until then.
        `priority` 0 (the default) to 9: with a backlog, a higher priority starts first. `owner`:
        whose job it is (a tenant or user id); `tags`: a few labels (both filter `list`).
        `unique_key`: one job of the type per key — `unique_mode` "active" (default: while one has
        not ended, the submission returns it), "throttle" or "debounce" (per `unique_window_s`)."""
        if isinstance(run_at, datetime):
            if run_at.tzinfo is None:
                raise ValueError("run_at needs a time zone (an aware datetime)")
            run_at = run_at.isoformat()
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        body = submission_body(type, params, timeout_s=timeout_s, max_attempts=max_attempts,
                               queue_timeout_s=queue_timeout_s, webhook_url=webhook_url, run_at=run_at,
                               delay_s=delay_s, concurrency_key=concurrency_key, priority=priority, owner=owner,
                               tags=list(tags) if tags is not None else None, unique_key=unique_key,
                               unique_mode=unique_mode, unique_window_s=unique_window_s)
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
                   owner: str | Iterable[str] | None = None, tag: str | Iterable[str] | None = None,
                   params: Mapping[str, Any] | None = None, result: Mapping[str, Any] | None = None,
                   page_size: int = 100, **filters: Any) -> AsyncIterator[JobState]:
        """Every job matching the filters, newest first, fetched a page at a time (a stable cursor).
        `owner`: any of them; `tag`: every one of them. Other filters: created_after, created_before,
        finished_after, finished_before, error."""
        query = {k: v for k, v in filters.items() if v is not None}
        for name, value in (("status", status), ("type", type), ("owner", owner), ("tag", tag)):
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

    async def signal(self, job_id: str, name: str, payload: Any = None) -> dict[str, Any]:
        """Send the job its signal `name` (what `ctx.wait_for_signal(name)` returns in its handler):
        `{"job_id", "name", "at", "resumes"}`. Once per name: ApiError 409 when it was sent already, its
        wait timed out, or the job ended."""
        answer = await self.request("POST", f"/api/jobs/{job_id}/signals/{name}", json=payload, retry="not_sent")
        body: dict[str, Any] = answer.json()
        return body

    async def cancel_matching(self, status: str | Iterable[str], *, dry_run: bool = False,
                              on_progress: Progress | None = None, **filters: Any) -> dict[str, Any]:
        """Cancel every live job with one of these statuses that the filters match (type, owner, tag,
        created_after, created_before: as `list`); at most 10,000 a call (`more` when others remain).
        `dry_run`: only count them. `on_progress(done, matched)`: called as the gateway goes."""
        return await self._by_filter("cancel", status, dry_run, filters, on_progress)

    async def retry_matching(self, status: str | Iterable[str], *, dry_run: bool = False, **filters: Any
                             ) -> dict[str, Any]:
        """Run every ended job with one of these statuses that the filters match (as `list`, plus
        `error`, `finished_after`, `finished_before`, `params.<name>`) again, each as a new job
        (`retry_of` the old), in one batch: `{"matched", "batch", "jobs", "retried", "created"}`.
        `dry_run`: only count. The same call again makes nothing twice."""
        return await self._by_filter("retry", status, dry_run, filters)

    async def delete(self, job_id: str) -> None:
        """Delete an ended job from history (ApiError 409 for a live one: cancel it first)."""
        await self.request("DELETE", f"/api/jobs/{job_id}", retry="not_sent")

    async def delete_matching(self, status: str | Iterable[str], *, dry_run: bool = False,
                              on_progress: Progress | None = None, **filters: Any) -> dict[str, Any]:
        """Delete every ended job with one of these statuses that the filters match (as `retry_matching`)
        from history: `{"matched", "deleted", "more"}` (at most 10,000 a call). `dry_run`: only count.
        `on_progress(done, matched)`: called as the gateway goes."""
        return await self._by_filter("delete", status, dry_run, filters, on_progress)

    async def start_cancel_matching(self, status: str | Iterable[str], *, idempotency_key: str | None = None,
                                    **filters: Any) -> dict[str, Any]:
        """`cancel_matching` as a stored operation a conductor runs (it goes on whatever happens to this
        client or the gateway): its record (`id`, `status`, `matched`, `done`…). ApiError 422 when more
        than 10,000 jobs match. The same `idempotency_key` again answers the same operation."""
        return await self._start_operation("cancel", status, idempotency_key, filters)

    async def start_delete_matching(self, status: str | Iterable[str], *, idempotency_key: str | None = None,
                                    **filters: Any) -> dict[str, Any]:
        """`delete_matching` as a stored operation (as `start_cancel_matching`)."""
        return await self._start_operation("delete", status, idempotency_key, filters)

    async def operation(self, operation_id: str) -> dict[str, Any]:
        """A stored bulk operation's record now."""
        answer: dict[str, Any] = await self.get_json(f"/api/operations/{operation_id}")
        return answer

    async def operations(self) -> builtins.list[dict[str, Any]]:
        """The newest stored bulk operations (100), newest first."""
        answer: builtins.list[dict[str, Any]] = await self.get_json("/api/operations")
        return answer

    async def wait_operation(self, operation_id: str, on_progress: Progress | None = None) -> dict[str, Any]:
        """Follow a stored operation to its end (`on_progress(done, matched)` as it goes); its final
        record (`status` `done` or `failed`). A dropped connection is followed again."""
        async for event in self.events(f"/api/operations/{operation_id}/events", until=frozenset({"done", "failed"})):
            record: dict[str, Any] = msgspec.json.decode(event.data)
            if on_progress is not None and record.get("matched") is not None:
                on_progress(int(record["done"]), int(record["matched"]))
            if event.kind in ("done", "failed"):
                return record
        raise Unreachable(f"the events of operation {operation_id} ended before it did")

    async def _start_operation(self, action: str, status: str | Iterable[str], idempotency_key: str | None,
                               filters: dict[str, Any]) -> dict[str, Any]:
        # (a key made here when none is given: a retried request then finds the same operation)
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        answer: dict[str, Any] = (await self.request(
            "POST", f"/api/jobs/{action}", params=_filter_query(status, filters),
            headers={"Prefer": "respond-async", "Idempotency-Key": key})).json()
        return answer

    async def _by_filter(self, action: str, status: str | Iterable[str], dry_run: bool, filters: dict[str, Any],
                         on_progress: Progress | None = None) -> dict[str, Any]:
        """`POST /api/jobs/<action>` with the filter as its query (lists joined by commas). Each is safe
        to send again (a repeat acts on nothing twice), so it is retried like a read."""
        query = _filter_query(status, filters)
        if dry_run:
            query["dry_run"] = "true"
        elif on_progress is not None:
            return await self.post_with_progress(f"/api/jobs/{action}", query, on_progress)
        answer: dict[str, Any] = (await self.request("POST", f"/api/jobs/{action}", params=query)).json()
        return answer

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

    async def types(self) -> TypeList:
        """The job types the processors serve, with their steps and params schema."""
        answer = await self.get_json("/api/types")
        return answer["types"] if isinstance(answer, dict) else answer  # type: ignore[no-any-return]

    async def stream_token(self, jobs: Iterable[str] | None = None, *, owner: str | None = None,
                           tags: Iterable[str] = (), rights: Iterable[str] = (), types: Iterable[str] | None = None,
                           expires_in: int | None = None) -> str:
        """A short-lived token for a page (`?access_token=`); with `jobs`, good for those jobs only,
        with `owner` and/or `tags` for that owner's jobs and/or those with all the tags (what a page
        of one user should get); `rights` beyond reading — `submit` (an owner's token: its jobs are
        stamped with the owner; `types` limits them), `cancel`, `signal` — and `expires_in` seconds.
        Needs a gateway with API tokens."""
        body: dict[str, Any] = {} if jobs is None else {"jobs": list(jobs)}
        if owner is not None:
            body["owner"] = owner
        if tags:
            body["tags"] = list(tags)
        if rights:
            body["rights"] = list(rights)
        if types is not None:
            body["types"] = list(types)
        if expires_in is not None:
            body["expires_in"] = expires_in
        answer = await self.request("POST", "/api/stream-tokens", json=body or None, retry="not_sent")
        return str(answer.json()["token"])

    async def form_token(self, *, owner: str | None = None) -> str:
        """A token for a page's plain form (`?access_token=` in its action); with `owner`, every job
        it submits is that owner's, whatever the form says."""
        body = {"owner": owner} if owner is not None else None
        return str((await self.request("POST", "/api/form-tokens", json=body, retry="not_sent")).json()["token"])

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

    async def signal(self, name: str, payload: Any = None) -> dict[str, Any]:
        return await self.client.signal(self.id, name, payload)

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


def _filter_query(status: str | Iterable[str], filters: dict[str, Any]) -> dict[str, Any]:
    """A bulk action's filter as its query (lists joined by commas)."""
    return {k: v if isinstance(v, str) or not isinstance(v, Iterable) else ",".join(v)
            for k, v in {"status": status, **filters}.items() if v is not None}
