"""HTTP routes of batches: thin handlers over batches.py and batch_stream.py."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody
from nats.js.kv import KeyValue

from jobline.runtime.concurrency import bounded

from . import batches
from .auth import take_submit_tokens
from .batch_stream import batch_events
from .core import Core, cancel
from .event_stream import EventStream
from .limits import MAX_BATCH_BYTES
from .problems import Problem


def _batches(request: Request[Any, Any, Any]) -> tuple[Core, KeyValue]:
    core: Core = request.app.state.core
    if core.batches is None:
        raise Problem(503, "Batches unavailable", "this gateway has not opened the batches yet")
    return core, core.batches


@post("/api/batches", status_code=202, summary="Submit many jobs as one batch", request_max_body_size=MAX_BATCH_BYTES,
      description="`{\"jobs\": [<job as POST /api/jobs takes it, plus an optional idempotency_key>, …]}`, 1 to "
      "10,000 jobs. All or nothing: every job is checked first, and one bad job refuses the whole batch with a "
      "problem naming its index (`errors[0].key` = `jobs[3].type`, `index` = 3); nothing is created. The jobs "
      "are then stored together and their ids answered in order (`<batch id>-<index>`, or the job a job's "
      "idempotency_key already names). With an `Idempotency-Key` header, repeating the request (also "
      "concurrently) returns the same batch and creates no job twice.",
      responses={202: ResponseSpec(batches.BatchAccepted, description="Stored", generate_examples=False)})
async def submit_batch(request: Request[Any, Any, Any], data: JSONBody[batches.BatchSubmission],
                       idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
                       ) -> Response[batches.BatchAccepted]:
    core, kv = _batches(request)
    take_submit_tokens(request, len(data.jobs))
    record, fresh = await batches.create(core, kv, data, idempotency_key)
    headers = {"Location": f"/api/batches/{record.id}"}
    if not fresh:
        headers["Idempotent-Replayed"] = "true"
    return Response(batches.BatchAccepted(id=record.id, jobs=record.jobs, links=batches.links(record.id)),
                    status_code=202, headers=headers)


@get("/api/batches", summary="The newest batches (at most 100), newest first")
async def list_batches(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    core, kv = _batches(request)
    return await batches.recent(core.js, core.settings.names, kv)


@get("/api/batches/{batch_id:str}", summary="A batch: counts by status, overall progress, ETA, failures, its jobs")
async def get_batch(request: Request[Any, Any, Any], batch_id: FromPath[str]) -> batches.BatchState:
    core, kv = _batches(request)
    return await batches.state_of(core, kv, batch_id)


@post("/api/batches/{batch_id:str}/cancel", status_code=202, summary="Cancel every job of the batch not yet ended")
async def cancel_batch(request: Request[Any, Any, Any], batch_id: FromPath[str]) -> dict[str, int]:
    core, kv = _batches(request)
    state = await batches.state_of(core, kv, batch_id)
    open_jobs = [j.id for j in state.jobs if j.status not in batches.TERMINAL]

    async def one(job_id: str) -> str:
        try:
            return await cancel(core, job_id, reason=f"batch {batch_id} cancelled")
        except Problem as problem:
            if problem.status_code in (404, 409):  # ended (or not folded yet) meanwhile
                return "ended"
            raise

    outcomes = await bounded([partial(one, j) for j in open_jobs], 64)
    return {status: outcomes.count(status) for status in ("cancelled", "cancelling", "ended")}


@get("/api/batches/{batch_id:str}/events", summary="Live progress of a whole batch (Server-Sent Events)",
     description="A `snapshot` (the batch's state), a `job_ended` per job that ends (with the counts so far), a "
     "coalesced `progress` at most twice a second, and `batch_completed`, after which the stream ends. A "
     "reconnect (Last-Event-ID) gets a fresh snapshot whose counts, with the `job_ended` events after it, add "
     "up to the whole batch.", response_description="text/event-stream")
async def batch_event_stream(request: Request[Any, Any, Any], batch_id: FromPath[str]) -> Response[Any]:
    core, kv = _batches(request)
    await batches.require(kv, batch_id)  # a 404 now, not an empty stream
    return EventStream(batch_events(core, kv, batch_id), core.watchdog)


batch_handlers = [submit_batch, list_batches, get_batch, cancel_batch, batch_event_stream]
