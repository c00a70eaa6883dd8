"""`Client`: the same API as `AsyncClient`, for code that is not async (scripts, Django views, the CLI).

    with Client() as jobline:
        job = jobline.submit("transcode", {"upload": upload.id})
        final = job.wait(timeout=600)

It runs one `AsyncClient` on an event loop of its own in a background thread, so there is one
implementation of retries and resumable watching, not two that drift apart.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from jobline.contract.alerts import AlertRecord
from jobline.contract.batches import BatchAccepted, BatchState
from jobline.contract.events import JobEvent, LogRow
from jobline.contract.flows import FlowAccepted, FlowTreeNode
from jobline.contract.job_state import ArtifactInfo, JobState
from jobline.contract.queues import QueueView
from jobline.contract.schedules import ScheduleView
from jobline.contract.workers import WorkerView

from .aio import AsyncClient, AsyncJob
from .controls import Alerts, Queues, Schedules, Workers
from .files import Upload
from .stream import RawEvent, StreamEvent

T = TypeVar("T")


# (aliases: the clients' `list` method hides the builtin inside their class bodies)
LogRows = list[LogRow]
Artifacts = list[ArtifactInfo]
Timeline = list[tuple[int, JobEvent]]
TypeList = list[dict[str, Any]]
Jobs = list["Job"]

class _Portal:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobline-client", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C (or any interruption) stops the work in the loop too
            raise

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.call(anext(source))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None and not self.loop.is_closed():
                self.call(aclose())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class Client:
    def __init__(self, url: str | None = None, *, token: str | None = None, timeout_s: float | None = None,
                 retries: int | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self._portal = _Portal()

        async def make() -> AsyncClient:
            return AsyncClient(url, token=token, timeout_s=timeout_s, retries=retries, transport=transport)

        self.aio = self._portal.call(make())

    @property
    def url(self) -> str:
        return self.aio.url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._portal.loop.is_closed():
            self._portal.call(self.aio.aclose())
        self._portal.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._portal.call(coro)

    # --- the same methods as AsyncClient ----------------------------------------------------
    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self._run(self.aio.request(method, path, **options))

    def get_json(self, path: str, **params: Any) -> Any:
        return self._run(self.aio.get_json(path, **params))

    def events(self, path: str, *, last_event_id: int | None = None,
               until: frozenset[str] | None = None) -> Iterator[RawEvent]:
        return self._portal.iterate(self.aio.events(path, last_event_id=last_event_id, until=until))

    def submit(self, type: str, params: Mapping[str, Any] | None = None, **options: Any) -> Job:
        return Job(self, self._run(self.aio.submit(type, params, **options)))

    def submit_many(self, specs: Iterable[Mapping[str, Any]], *, concurrency: int = 16) -> Jobs:
        return [Job(self, job) for job in self._run(self.aio.submit_many(specs, concurrency=concurrency))]

    def job(self, job_id: str) -> Job:
        return Job(self, self.aio.job(job_id))

    def get(self, job_id: str) -> JobState:
        return self._run(self.aio.get(job_id))

    def list(self, **filters: Any) -> Iterator[JobState]:
        return self._portal.iterate(self.aio.list(**filters))

    def cancel(self, job_id: str) -> str:
        return self._run(self.aio.cancel(job_id))

    def signal(self, job_id: str, name: str, payload: Any = None) -> dict[str, Any]:
        return self._run(self.aio.signal(job_id, name, payload))

    def cancel_matching(self, status: str | Iterable[str], *, dry_run: bool = False,
                        on_progress: Callable[[int, int], None] | None = None, **filters: Any) -> dict[str, Any]:
        return self._run(self.aio.cancel_matching(status, dry_run=dry_run, on_progress=on_progress, **filters))

    def retry_matching(self, status: str | Iterable[str], *, dry_run: bool = False, **filters: Any) -> dict[str, Any]:
        return self._run(self.aio.retry_matching(status, dry_run=dry_run, **filters))

    def delete(self, job_id: str) -> None:
        self._run(self.aio.delete(job_id))

    def delete_matching(self, status: str | Iterable[str], *, dry_run: bool = False,
                        on_progress: Callable[[int, int], None] | None = None, **filters: Any) -> dict[str, Any]:
        return self._run(self.aio.delete_matching(status, dry_run=dry_run, on_progress=on_progress, **filters))

    def start_cancel_matching(self, status: str | Iterable[str], *, idempotency_key: str | None = None,
                              **filters: Any) -> dict[str, Any]:
        return self._run(self.aio.start_cancel_matching(status, idempotency_key=idempotency_key, **filters))

    def start_delete_matching(self, status: str | Iterable[str], *, idempotency_key: str | None = None,
                              **filters: Any) -> dict[str, Any]:
        return self._run(self.aio.start_delete_matching(status, idempotency_key=idempotency_key, **filters))

    def operation(self, operation_id: str) -> dict[str, Any]:
        return self._run(self.aio.operation(operation_id))

    def operations(self) -> builtins.list[dict[str, Any]]:
        return self._run(self.aio.operations())

    def wait_operation(self, operation_id: str,
                       on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        return self._run(self.aio.wait_operation(operation_id, on_progress))

    def timeline(self, job_id: str) -> Timeline:
        return self._run(self.aio.timeline(job_id))

    def logs(self, job_id: str) -> LogRows:
        return self._run(self.aio.logs(job_id))

    def artifacts(self, job_id: str, dest: str | os.PathLike[str] | None = None) -> Artifacts:
        return self._run(self.aio.artifacts(job_id, dest))

    def download(self, job_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        return self._run(self.aio.download(job_id, name, dest))

    def upload(self, file: str | os.PathLike[str] | IO[bytes], *, filename: str | None = None,
               content_type: str | None = None, progress: Callable[[int, int | None], None] | None = None) -> Upload:
        return self._run(self.aio.upload(file, filename=filename, content_type=content_type, progress=progress))

    def types(self) -> TypeList:
        return self._run(self.aio.types())

    def form_token(self, *, owner: str | None = None) -> str:
        return self._run(self.aio.form_token(owner=owner))

    def stream_token(self, jobs: Iterable[str] | None = None, *, owner: str | None = None,
                     tags: Iterable[str] = (), rights: Iterable[str] = (), types: Iterable[str] | None = None,
                     expires_in: int | None = None) -> str:
        return self._run(self.aio.stream_token(jobs, owner=owner, tags=tags, rights=rights, types=types,
                                               expires_in=expires_in))

    def submit_batch(self, specs: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
                     ) -> BatchAccepted:
        return self._run(self.aio.submit_batch(specs, idempotency_key=idempotency_key))

    def submit_flow(self, flow: Mapping[str, Any], *, idempotency_key: str | None = None) -> FlowAccepted:
        return self._run(self.aio.submit_flow(flow, idempotency_key=idempotency_key))

    def flow(self, flow_id: str) -> FlowTreeNode:
        return self._run(self.aio.flow(flow_id))

    def cancel_flow(self, flow_id: str) -> dict[str, str]:
        return self._run(self.aio.cancel_flow(flow_id))

    def batch(self, batch_id: str) -> BatchState:
        return self._run(self.aio.batch(batch_id))

    def cancel_batch(self, batch_id: str) -> dict[str, int]:
        return self._run(self.aio.cancel_batch(batch_id))

    def watch_batch(self, batch_id: str) -> Iterator[RawEvent]:
        return self._portal.iterate(self.aio.watch_batch(batch_id))

    def create_schedule(self, name: str, cron: str, type: str, params: Mapping[str, Any] | None = None,
                        **options: Any) -> ScheduleView:
        return self._run(self.aio.create_schedule(name, cron, type, params, **options))

    def schedules(self) -> Schedules:
        return self._run(self.aio.schedules())

    def schedule(self, name: str) -> ScheduleView:
        return self._run(self.aio.schedule(name))

    def pause_schedule(self, name: str) -> ScheduleView:
        return self._run(self.aio.pause_schedule(name))

    def resume_schedule(self, name: str) -> ScheduleView:
        return self._run(self.aio.resume_schedule(name))

    def delete_schedule(self, name: str) -> None:
        self._run(self.aio.delete_schedule(name))

    def queues(self) -> Queues:
        return self._run(self.aio.queues())

    def queue(self, job_type: str) -> QueueView:
        return self._run(self.aio.queue(job_type))

    def pause_queue(self, job_type: str) -> QueueView:
        return self._run(self.aio.pause_queue(job_type))

    def resume_queue(self, job_type: str) -> QueueView:
        return self._run(self.aio.resume_queue(job_type))

    def set_queue_limits(self, job_type: str, **limits: int | float | None) -> QueueView:
        return self._run(self.aio.set_queue_limits(job_type, **limits))

    def alerts(self) -> Alerts:
        return self._run(self.aio.alerts())

    def set_alert(self, name: str, **rule: Any) -> AlertRecord:
        return self._run(self.aio.set_alert(name, **rule))

    def delete_alert(self, name: str) -> None:
        self._run(self.aio.delete_alert(name))

    def workers(self) -> Workers:
        return self._run(self.aio.workers())

    def worker(self, worker_id: str) -> WorkerView:
        return self._run(self.aio.worker(worker_id))

    def drain_worker(self, worker_id: str) -> WorkerView:
        return self._run(self.aio.drain_worker(worker_id))

    def resume_worker(self, worker_id: str) -> WorkerView:
        return self._run(self.aio.resume_worker(worker_id))

    def watch(self, job_id: str) -> Iterator[StreamEvent]:
        return self.job(job_id).watch()

    def wait(self, job_id: str, timeout: float | None = None) -> JobState:
        return self.job(job_id).wait(timeout)

    def replay(self, job_id: str, speed: float = 10.0, from_s: float = 0.0) -> Iterator[StreamEvent]:
        return self._portal.iterate(self.aio.replay(job_id, speed, from_s))


class Job:
    """The synchronous twin of `AsyncJob`."""

    def __init__(self, client: Client, job: AsyncJob):
        self._client = client
        self.aio = job

    def __repr__(self) -> str:
        return repr(self.aio)

    @property
    def id(self) -> str:
        return self.aio.id

    @property
    def state(self) -> JobState | None:
        return self.aio.state

    def refresh(self) -> JobState:
        return self._client._run(self.aio.refresh())

    def watch(self) -> Iterator[StreamEvent]:
        return self._client._portal.iterate(self.aio.watch())

    def wait(self, timeout: float | None = None) -> JobState:
        return self._client._run(self.aio.wait(timeout))

    def result(self, timeout: float | None = None) -> Any:
        return self._client._run(self.aio.result(timeout))

    def cancel(self) -> str:
        return self._client._run(self.aio.cancel())

    def signal(self, name: str, payload: Any = None) -> dict[str, Any]:
        return self._client._run(self.aio.signal(name, payload))

    def logs(self) -> LogRows:
        return self._client._run(self.aio.logs())

    def timeline(self) -> Timeline:
        return self._client._run(self.aio.timeline())

    def artifacts(self, dest: str | os.PathLike[str] | None = None) -> Artifacts:
        return self._client._run(self.aio.artifacts(dest))

    def download(self, name: str, dest: str | os.PathLike[str]) -> Path:
        return self._client._run(self.aio.download(name, dest))

    def replay(self, speed: float = 10.0, from_s: float = 0.0) -> Iterator[StreamEvent]:
        return self._client._portal.iterate(self.aio.replay(speed, from_s))
