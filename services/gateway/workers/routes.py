"""HTTP routes of the workers (the processors at work): thin handlers over jobs/workers.py."""

from __future__ import annotations

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from jobline.contract.workers import WorkerView
from jobline.jobs.workers import Workers


@get("/api/workers", summary="Every processor at work: its types, slots, running jobs and state", errors=(503,),
     description="Each processor rewrites its entry every JOBLINE_WORKER_BEAT_S (5 s by default). `state`: `up`; "
     "`draining` (told to take no new job, still running some); `drained` (running none); `gone` (three beats "
     "missed: killed or cut off — listed until its entry expires). A processor that stops cleanly leaves the list.")
async def list_workers(workers: NamedDependency[Workers]) -> list[WorkerView]:
    return workers.all()


@get("/api/workers/{worker_id:str}", summary="One processor at work", errors=(404, 503))
async def get_worker(workers: NamedDependency[Workers], worker_id: FromPath[str]) -> WorkerView:
    return workers.one(worker_id)


@post("/api/workers/{worker_id:str}/drain", status_code=200, errors=(404, 503),
      summary="Drain a processor: it takes no new job and runs those it has to their end (it stays up)",
      description="Asked of the processor itself: 404 when no processor of that id is running. Idempotent. Its "
      "jobs' queues go on on the other processors. `resume` undoes it; a restart does too.")
async def drain_worker(workers: NamedDependency[Workers], worker_id: FromPath[str]) -> WorkerView:
    return await workers.ask(worker_id, "drain")


@post("/api/workers/{worker_id:str}/resume", status_code=200, errors=(404, 503),
      summary="Let a drained processor take jobs again")
async def resume_worker(workers: NamedDependency[Workers], worker_id: FromPath[str]) -> WorkerView:
    return await workers.ask(worker_id, "resume")


worker_handlers = [list_workers, get_worker, drain_worker, resume_worker]
