"""Flows from the gateway: submit a tree of jobs at once, read it back with its progress rolled up,
cancel it as a whole (contract/flows.py says how a flow runs; the conductor runs it).

Creation is all or nothing: every job spec, every name and dependency, the depth and no cycle
are checked (plan.py), then the flow's record is stored and its jobs in one atomic write: those
that wait (a parent; a child with `depends_on`) as `blocked`, the others as pending jobs. Ids: the
root is a new job id, its descendants `<root>-<n>` in depth-first order, each stored only if new,
so a retried flow (the same `Idempotency-Key`) never makes a job twice.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial

import msgspec

from jobline.contract.events import JobBlocked, JobCreated
from jobline.contract.flows import FlowNode, FlowRecord, FlowTreeNode, NodeStatus
from jobline.contract.job_state import JobState
from jobline.contract.submissions import FlowSubmission
from jobline.contract.vocabulary import TERMINAL_STATUSES
from jobline.jobs.checks import check_idempotency_key
from jobline.jobs.errors import JobError, NotFound
from jobline.jobs.idempotency import claim, fingerprint, release
from jobline.jobs.new_jobs import blocked, created
from jobline.jobs.reader import check_job_id
from jobline.jobs.writer import JobWriter, new_job_id
from jobline.runtime.concurrency import bounded
from jobline.runtime.kv_records import KvRecords

from .plan import Planned, plan


def links(flow_id: str) -> dict[str, str]:
    return {"self": f"/api/flows/{flow_id}", "root": f"/api/jobs/{flow_id}", "cancel": f"/api/flows/{flow_id}/cancel"}


class Flows:
    def __init__(self, records: KvRecords[FlowRecord], writer: JobWriter):
        self._records = records
        self._writer = writer

    async def create(self, submission: FlowSubmission, idempotency_key: str | None, traceparent: str | None = None
                     ) -> tuple[FlowRecord, list[Planned], bool]:
        """`_create` in a `flow` span (tracing on): the flow is one trace its jobs' processor spans join."""
        with self._writer.span("flow", traceparent, **{"jobline.flow.size": submission.job_count()}) as stamped:
            return await self._create(submission, idempotency_key, stamped)

    async def _create(self, submission: FlowSubmission, idempotency_key: str | None, traceparent: str | None
                      ) -> tuple[FlowRecord, list[Planned], bool]:
        """Check the whole flow, then store its record and its jobs — the jobs in one atomic write,
        each only if it does not exist yet; returns the record, its jobs and whether it is new
        (False: an earlier request with the same Idempotency-Key made it).

        The record goes first (a child that ends at once must find it); if the jobs cannot be stored
        it is deleted again, and a record whose jobs never came (its gateway died in between) is no
        flow: its root does not exist, so `GET /api/flows/{id}` answers 404 (tree())."""
        writer = self._writer
        check_idempotency_key(idempotency_key)
        root_id = new_job_id()
        planned = plan(root_id, submission)
        for job in planned:
            try:
                await writer.checks.check_now(job.submission)
            except JobError as error:
                raise error.within(job.path) from None
        fresh = True
        if idempotency_key is not None:
            claimed = await claim(writer.keys, f"flow:{idempotency_key}", root_id, fingerprint(submission))
            if claimed != root_id:  # the same flow: its jobs exist, or are made here if its first try died
                root_id, fresh = claimed, False
                planned = plan(root_id, submission)
        now = time.time()
        record = FlowRecord(root=root_id, created_at=now, nodes={
            job.id: FlowNode(parent=job.parent, name=job.name, weight=job.weight, blocked_on=job.blocked_on,
                             on_child_failure=job.on_child_failure,
                             status=NodeStatus.WAITING if job.blocked_on else NodeStatus.RELEASED)
            for job in planned})
        if not await self._records.create(root_id, record):
            stored = await self._records.value(root_id)  # (a retry: the first try's record holds what happened since)
            record = stored if stored is not None else record

        root = submission.job

        def created_event(job: Planned) -> JobCreated:
            event = writer.created_event(job.submission, job.id, now, traceparent=traceparent)
            # A job of the flow is its root's owner's, with the root's tags, unless it says otherwise.
            owner = event.owner if event.owner is not None else root.owner
            tags = event.tags or list(root.tags)
            return msgspec.structs.replace(event, flow=root_id, parent=job.parent, name=job.name, owner=owner, tags=tags,
                                           children=job.children, on_child_failure=job.on_child_failure)

        names = writer.names
        jobs = [blocked(names, JobBlocked(ts=now, job_id=job.id, blocked_on=job.blocked_on, job=created_event(job)))
                if job.blocked_on else created(names, created_event(job), None, now) for job in planned]
        try:
            await writer.store_all(jobs)
        except BaseException:
            if fresh:  # nothing of this flow was stored: neither its record nor its key remain
                with contextlib.suppress(Exception):
                    await self._records.delete(root_id)
                if idempotency_key is not None:
                    await release(writer.keys, f"flow:{idempotency_key}", root_id)
            raise
        return record, planned, fresh

    async def tree(self, flow_id: str) -> FlowTreeNode:
        """The flow as a tree, each job with its state and its progress rolled up from its children's."""
        check_job_id(flow_id)  # (a flow's id is its root job's)
        record = await self._records.value(flow_id)
        if record is None:
            raise NotFound(f"there is no flow {flow_id!r}", title="Flow not found")
        ids = list(record.nodes)
        reader = self._writer.reader
        states = dict(zip(ids, await bounded([partial(reader.lookup, j) for j in ids], 32), strict=True))
        if states.get(flow_id) is None:  # a record whose jobs were never stored (create()): no flow
            raise NotFound(f"there is no flow {flow_id!r}", title="Flow not found")

        def node(job_id: str, weight: float) -> FlowTreeNode:
            state: JobState | None = states.get(job_id)
            children = [node(ref.id, ref.weight) for ref in (state.children if state is not None else [])]
            status = state.status if state is not None else "unknown"
            own = 1.0 if status in TERMINAL_STATUSES else (state.progress or 0.0) if state is not None else 0.0
            total = 1.0 + sum(c.weight for c in children)
            rollup = (own + sum(c.weight * c.rollup for c in children)) / total
            return FlowTreeNode(id=job_id, name=state.name if state else None, type=state.type if state else "",
                                status=status, progress=own, rollup=round(rollup, 4), weight=weight,
                                blocked_on=state.blocked_on if state else [], error=state.error if state else None,
                                children=children)

        return node(flow_id, 1.0)

    async def cancel(self, flow_id: str) -> str:
        """Cancel the flow: its root, which takes every unfinished job below it along."""
        check_job_id(flow_id)
        if await self._records.value(flow_id) is None or await self._writer.reader.lookup(flow_id) is None:
            raise NotFound(f"there is no flow {flow_id!r}", title="Flow not found")
        return await self._writer.cancel(flow_id, reason=f"flow {flow_id} cancelled")
