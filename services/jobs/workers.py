"""The processors at work, as the `workers` bucket tells (contract/workers.py): watched live, each
shown up, draining, drained or gone; and an operator's drain or resume, asked of that processor
itself (only it answers its subject: no answer means it is gone)."""

from __future__ import annotations

import time

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.contract.workers import (
    WORKER_ACTIONS,
    WORKERS_TTL_S,
    WorkerInfo,
    WorkerView,
    is_valid_worker_id,
    view_of,
    workers_bucket_config,
)
from jobline.runtime.kv_mirror import KvMirror

from .errors import NotFound, Unavailable

_view_decoder = msgspec.json.Decoder(WorkerView)
ASK_TIMEOUT_S = 5.0


class Workers:
    def __init__(self, nc: Client, names: Names) -> None:
        self._nc = nc
        self._names = names
        self._mirror: KvMirror[WorkerInfo] = KvMirror(WorkerInfo)

    async def start(self, js: JetStreamContext, replicas: int) -> None:
        await self._mirror.start(js, workers_bucket_config(self._names, replicas))

    async def stop(self) -> None:
        await self._mirror.stop()

    def all(self) -> list[WorkerView]:
        """Every processor that beat within the bucket's memory, the longest-running first."""
        now = time.time()
        kept = [info for info in self._mirror.values.values() if now - info.beat_at <= WORKERS_TTL_S]
        return [view_of(info, now) for info in sorted(kept, key=lambda i: (i.started_at, i.id))]

    def serving(self, job_type: str) -> int:
        """How many processors that are not gone serve the type (drained ones included: they may resume)."""
        now = time.time()
        return sum(1 for info in self._mirror.values.values() if job_type in info.types and info.state_at(now) != "gone")

    def one(self, worker_id: str) -> WorkerView:
        for view in self.all():
            if view.id == worker_id:
                return view
        raise NotFound(f"no worker {worker_id!r}", title="Unknown worker")

    async def ask(self, worker_id: str, action: str) -> WorkerView:
        """Drain or resume one processor; what it says of itself after."""
        if action not in WORKER_ACTIONS:
            raise NotFound(f"no action {action!r}")
        if not is_valid_worker_id(worker_id):
            raise NotFound(f"no worker {worker_id!r}", title="Unknown worker")
        try:
            answer = await self._nc.request(self._names.worker_rpc(worker_id, action), b"", timeout=ASK_TIMEOUT_S)
        except NoRespondersError:
            raise NotFound(f"no worker {worker_id!r} is running", title="Unknown worker") from None
        except NatsTimeout:
            raise Unavailable(f"worker {worker_id!r} did not answer within {ASK_TIMEOUT_S:.0f}s") from None
        return _view_decoder.decode(answer.data)
