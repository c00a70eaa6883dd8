"""HTTP routes of batches: thin handlers over service.py and stream.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody

from jobline.contract.batches import BatchAccepted, BatchState, BatchSummary
from jobline.contract.submissions import BatchSubmission
from jobline.jobs.history_client import HistoryClient

from ..http.auth import take_submit_tokens
from ..http.limits import MAX_BATCH_BYTES
from ..jobs.search import parse_filter
from ..live.event_stream import EventStream, StreamWatchdog
from ..live.streams import Live
from .retry import BulkRetried, retry_matching
from .service import Batches, links
from .stream import batch_events


@post("/api/batches", status_code=202, summary="Submit many jobs as one batch", request_max_body_size=MAX_BATCH_BYTES,
      errors=(400, 409, 413, 422, 429, 503),
      description="`{\"jobs\": [<job as POST /api/jobs takes it, plus an optional idempotency_key>, …]}`, 1 to "
      "10,000 jobs. All or nothing: every job is checked first, and one bad job refuses the whole batch with a "
      "problem naming its index (`errors[0].key` = `jobs[3].type`, `index` = 3); nothing is created. The jobs "
      "are then stored in one atomic write and their ids answered in order (`<batch id>-<index>`, or the job a "
      "job's idempotency_key already names). With an `Idempotency-Key` header, repeating the request (also "
      "concurrently) returns the same batch and creates no job twice.",
      responses={202: ResponseSpec(BatchAccepted, description="Stored", generate_examples=False)})
async def submit_batch(request: Request[Any, Any, Any], batches: NamedDependency[Batches], data: JSONBody[BatchSubmission],
                       idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
                       traceparent: Annotated[str | None, HeaderParameter(name="traceparent")] = None,
                       ) -> Response[BatchAccepted]:
    take_submit_tokens(request, len(data.jobs))
    record, fresh = await batches.create(data, idempotency_key, traceparent=traceparent)
    headers = {"Location": f"/api/batches/{record.id}"}
    if not fresh:
        headers["Idempotent-Replayed"] = "true"
    return Response(BatchAccepted(id=record.id, jobs=record.jobs, links=links(record.id)), status_code=202,
                    headers=headers)


@post("/api/jobs/retry", status_code=202, summary="Retry every ended job a filter matches, as one batch",
      errors=(400, 409, 413, 422, 429, 503),
      description="`status` (required: ended statuses, e.g. `failed` or `failed,expired`), and optionally `type`, "
      "`owner`, `tag`, `created_after`/`created_before`, `finished_after`/`finished_before`, `error` (text in the "
      "error) and `params.<name>=` as for `GET /api/jobs`. Each matched job runs again as a new job with the same "
      "type, params, owner, tags, priority and limits and `retry_of` = the old job's id; the new jobs are one batch "
      "(`batch`: follow it at `/api/batches/{id}` and its `events`). `dry_run=true`: only count (and list the first "
      "20), change nothing (200). Idempotent: the same request answers the same batch (`Idempotent-Replayed`), and "
      "a job retried once is not retried again by another request (its retry is). At most 10,000 jobs: more is a "
      "422 with `matched`.",
      responses={200: ResponseSpec(BulkRetried, description="A dry run, or no job matched: nothing was made",
                                   generate_examples=False),
                 202: ResponseSpec(BulkRetried, description="The new jobs are stored, as one batch",
                                   generate_examples=False)})
async def retry_jobs(
    request: Request[Any, Any, Any],
    batches: NamedDependency[Batches],
    history: NamedDependency[HistoryClient],
    status: FromQuery[str],
    type: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
    created_after: FromQuery[float | None] = None,
    created_before: FromQuery[float | None] = None,
    finished_after: FromQuery[float | None] = None,
    finished_before: FromQuery[float | None] = None,
    dry_run: FromQuery[bool] = False,
) -> Response[BulkRetried]:
    job_filter = parse_filter(request.query_params, status=status, job_type=type, created_after=created_after,
                              created_before=created_before, finished_after=finished_after,
                              finished_before=finished_before, error=error, owner=owner, tag=tag)
    # (each new job counts against the submit rate, as in a batch: counted once the matches are known)
    answer, fresh = await retry_matching(batches, history, job_filter, batches.seen_seq, dry_run,
                                         before_create=lambda n: take_submit_tokens(request, n))
    headers = {} if fresh else {"Idempotent-Replayed": "true"}
    if answer.batch is not None:
        headers["Location"] = f"/api/batches/{answer.batch}"
    return Response(answer, status_code=202 if answer.batch is not None else 200, headers=headers)


@get("/api/batches", summary="The newest batches (at most 100), newest first", errors=(503,))
async def list_batches(batches: NamedDependency[Batches]) -> list[BatchSummary]:
    return await batches.recent()


@get("/api/batches/{batch_id:str}", summary="A batch: counts by status, overall progress, ETA, failures, its jobs",
     errors=(404, 503))
async def get_batch(batches: NamedDependency[Batches], batch_id: FromPath[str]) -> BatchState:
    return await batches.state(batch_id)


@post("/api/batches/{batch_id:str}/cancel", status_code=202, summary="Cancel every job of the batch not yet ended",
      errors=(404, 503))
async def cancel_batch(batches: NamedDependency[Batches], batch_id: FromPath[str]) -> dict[str, int]:
    return await batches.cancel(batch_id)


@get("/api/batches/{batch_id:str}/events", summary="Live progress of a whole batch (Server-Sent Events)",
     errors=(404, 429, 503),
     description="A `snapshot` (the batch's state), a `job_ended` per job that ends (with the counts so far), a "
     "coalesced `progress` at most twice a second, and `batch_completed`, after which the stream ends. A "
     "reconnect (Last-Event-ID) gets a fresh snapshot whose counts, with the `job_ended` events after it, add "
     "up to the whole batch.", response_description="text/event-stream")
async def batch_event_stream(batches: NamedDependency[Batches], live: NamedDependency[Live],
                             watchdog: NamedDependency[StreamWatchdog],
                             batch_id: FromPath[str]) -> Response[Any]:
    record = await batches.require(batch_id)  # a 404 now, not an empty stream
    return EventStream(batch_events(batches, live, record), watchdog)


batch_handlers = [retry_jobs, submit_batch, list_batches, get_batch, cancel_batch, batch_event_stream]
