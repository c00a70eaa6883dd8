"""Batches, flows, recurring schedules and queue controls through the client: typed answers (the
contract's Structs), writes retried only as far as that is safe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import msgspec

from jobline.contract.alerts import AlertRecord
from jobline.contract.batches import BatchAccepted, BatchState
from jobline.contract.flows import FlowAccepted, FlowTreeNode
from jobline.contract.queues import QueueView
from jobline.contract.schedules import ScheduleView
from jobline.contract.vocabulary import Overlap
from jobline.contract.workers import WorkerView

from .stream import RawEvent
from .transport import Transport, submission_body

Schedules = list[ScheduleView]
Queues = list[QueueView]
Workers = list[WorkerView]
Alerts = list[AlertRecord]
_schedule_decoder = msgspec.json.Decoder(ScheduleView)
_schedules_decoder = msgspec.json.Decoder(list[ScheduleView])
_queue_decoder = msgspec.json.Decoder(QueueView)
_queues_decoder = msgspec.json.Decoder(list[QueueView])
_worker_decoder = msgspec.json.Decoder(WorkerView)
_alert_decoder = msgspec.json.Decoder(AlertRecord)
_alerts_decoder = msgspec.json.Decoder(list[AlertRecord])
_workers_decoder = msgspec.json.Decoder(list[WorkerView])
_batch_accepted_decoder = msgspec.json.Decoder(BatchAccepted)
_batch_state_decoder = msgspec.json.Decoder(BatchState)
_flow_accepted_decoder = msgspec.json.Decoder(FlowAccepted)
_flow_tree_decoder = msgspec.json.Decoder(FlowTreeNode)
_str_map_decoder = msgspec.json.Decoder(dict[str, str])
_int_map_decoder = msgspec.json.Decoder(dict[str, int])


class Controls(Transport):
    # --- batches ---------------------------------------------------------------------------
    async def submit_batch(self, specs: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
                           ) -> BatchAccepted:
        """Submit up to 10,000 jobs in one request (each a mapping as `submit` takes: `type`,
        `params`, options, and its own `idempotency_key`): its id and its jobs' ids in order. All
        or nothing: a bad job raises ApiError naming its index. Retried safely (an Idempotency-Key
        is made when not given)."""
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        response = await self.request("POST", "/api/batches", json={"jobs": [dict(s) for s in specs]},
                                      headers={"Idempotency-Key": key})
        return _batch_accepted_decoder.decode(response.content)

    async def submit_flow(self, flow: Mapping[str, Any], *, idempotency_key: str | None = None) -> FlowAccepted:
        """Submit a flow (`{"job": {...}, "children": [{"name", "job", "depends_on", "children", ...}],
        "on_child_failure"}`: docs/api.md): its id and every job (id, name, parent). Its id is its
        root job's: `wait(id)` waits for the whole flow. Retried safely (an Idempotency-Key is made
        when not given)."""
        key = idempotency_key or f"jobline-client-{uuid.uuid4().hex}"
        response = await self.request("POST", "/api/flows", json=dict(flow), headers={"Idempotency-Key": key})
        return _flow_accepted_decoder.decode(response.content)

    async def flow(self, flow_id: str) -> FlowTreeNode:
        """The flow as a tree: each job's status and progress rolled up from its children's."""
        return _flow_tree_decoder.decode((await self.request("GET", f"/api/flows/{flow_id}")).content)

    async def cancel_flow(self, flow_id: str) -> dict[str, str]:
        response = await self.request("POST", f"/api/flows/{flow_id}/cancel", retry="not_sent")
        return _str_map_decoder.decode(response.content)

    async def batch(self, batch_id: str) -> BatchState:
        """The batch's counts by status, progress, ETA, failures and jobs."""
        return _batch_state_decoder.decode((await self.request("GET", f"/api/batches/{batch_id}")).content)

    async def cancel_batch(self, batch_id: str) -> dict[str, int]:
        response = await self.request("POST", f"/api/batches/{batch_id}/cancel", retry="not_sent")
        return _int_map_decoder.decode(response.content)

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

    # --- workers -------------------------------------------------------------------------------
    async def workers(self) -> Workers:
        """Every processor at work: its types, slots, the jobs it runs, its state (up, draining,
        drained, gone)."""
        return _workers_decoder.decode((await self.request("GET", "/api/workers")).content)

    async def worker(self, worker_id: str) -> WorkerView:
        return _worker_decoder.decode((await self.request("GET", f"/api/workers/{worker_id}")).content)

    async def drain_worker(self, worker_id: str) -> WorkerView:
        """The processor takes no new job and runs those it has to their end (it stays up)."""
        return _worker_decoder.decode((await self.request("POST", f"/api/workers/{worker_id}/drain")).content)

    async def resume_worker(self, worker_id: str) -> WorkerView:
        return _worker_decoder.decode((await self.request("POST", f"/api/workers/{worker_id}/resume")).content)

    # --- failure alerts ------------------------------------------------------------------------
    async def alerts(self) -> Alerts:
        """Every failure alert rule with what it last found (`state.firing`)."""
        return _alerts_decoder.decode((await self.request("GET", "/api/alerts")).content)

    async def set_alert(self, name: str, *, type: str | None = None, min_failures: int = 5, window_s: float = 600.0,
                        min_rate: float | None = None, webhook_url: str | None = None) -> AlertRecord:
        """Create or replace a rule: it fires while at least `min_failures` jobs of `type` (every type
        when None) failed or expired within `window_s` (and, with `min_rate`, that share of those that ended)."""
        rule = {"type": type, "min_failures": min_failures, "window_s": window_s, "min_rate": min_rate,
                "webhook_url": webhook_url}
        return _alert_decoder.decode((await self.request("PUT", f"/api/alerts/{name}", json=rule)).content)

    async def delete_alert(self, name: str) -> None:
        await self.request("DELETE", f"/api/alerts/{name}")
