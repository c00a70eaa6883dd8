"""HTTP routes of queue controls: thin handlers over store.py."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from jobline.contract.queues import QueueView
from jobline.jobs.errors import Malformed

from .store import QueueLimits, QueueStore


@get("/api/queues", summary="Every job type's queue: its controls, jobs waiting and running", errors=(503,))
async def list_queues(queues: NamedDependency[QueueStore]) -> list[QueueView]:
    return await queues.all()


@get("/api/queues/{job_type:str}", errors=(404, 503),
     summary="A job type's queue: paused or not, its limits, jobs waiting and running")
async def get_queue(queues: NamedDependency[QueueStore], job_type: FromPath[str]) -> QueueView:
    return await queues.view(job_type)


@put("/api/queues/{job_type:str}", summary="Set a job type's concurrency and rate limits", errors=(404, 422, 503),
     description="`concurrency`: at most this many jobs of the type run at once on the whole cluster (the "
     "queue's max_ack_pending: a slot held by a killed processor comes back after its ack wait); "
     "`rate_max` per `rate_window_s` (default 1 s): at most that many starts in any such window, counted by "
     "the broker across every processor. A field left out keeps its value; null lifts the limit. 422 for a "
     "limit ≤ 0.")
async def set_queue_limits(request: Request[Any, Any, Any], queues: NamedDependency[QueueStore], job_type: FromPath[str],
                           data: JSONBody[QueueLimits]) -> QueueView:  # (`data`: the documented body)
    try:  # strictly, as documented: Litestar's own decoding would take `"concurrency": "2"` for 2
        raw = msgspec.json.decode(await request.body())
        if isinstance(raw, dict):  # (JSON has one number type: 2.0 is the integer 2)
            raw = {k: int(v) if isinstance(v, float) and v.is_integer() and k != "rate_window_s" else v
                   for k, v in raw.items()}
        limits = msgspec.convert(raw, QueueLimits, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Malformed(str(exc), title="Bad Request") from None
    return await queues.set_limits(job_type, limits)


@post("/api/queues/{job_type:str}/pause", status_code=200, errors=(404, 503),
      summary="Pause a job type: nothing new starts, running jobs finish, submissions still wait in the queue")
async def pause_queue(queues: NamedDependency[QueueStore], job_type: FromPath[str]) -> QueueView:
    return await queues.pause(job_type, True)


@post("/api/queues/{job_type:str}/resume", status_code=200, errors=(404, 503),
      summary="Resume a paused job type: its backlog drains")
async def resume_queue(queues: NamedDependency[QueueStore], job_type: FromPath[str]) -> QueueView:
    return await queues.pause(job_type, False)


queue_handlers = [list_queues, get_queue, set_queue_limits, pause_queue, resume_queue]
