"""HTTP routes of batches: thin handlers over service.py and stream.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody

from jobline.contract.batches import BatchAccepted, BatchState, BatchSummary
from jobline.contract.submissions import BatchSubmission

from ..http.auth import take_submit_tokens
from ..http.limits import MAX_BATCH_BYTES
from ..live.event_stream import EventStream, StreamWatchdog
from ..live.streams import Live
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
                       ) -> Response[BatchAccepted]:
    take_submit_tokens(request, len(data.jobs))
    record, fresh = await batches.create(data, idempotency_key)
    headers = {"Location": f"/api/batches/{record.id}"}
    if not fresh:
        headers["Idempotent-Replayed"] = "true"
    return Response(BatchAccepted(id=record.id, jobs=record.jobs, links=links(record.id)), status_code=202,
                    headers=headers)


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


batch_handlers = [submit_batch, list_batches, get_batch, cancel_batch, batch_event_stream]
