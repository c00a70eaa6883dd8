"""HTTP routes of flows: thin handlers over service.py."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter

from jobline.contract.flows import FlowAccepted, FlowJob, FlowTreeNode
from jobline.contract.submissions import flow_decoder
from jobline.jobs.errors import Malformed

from ..http.auth import take_submit_tokens
from ..http.limits import MAX_FLOW_BYTES
from .service import Flows, links


@post("/api/flows", status_code=202, summary="Submit a flow: a parent job that runs once its children have ended",
      request_max_body_size=MAX_FLOW_BYTES, errors=(400, 409, 413, 422, 429, 503),
      description="`{\"job\": <the parent, as POST /api/jobs takes it>, \"children\": [{\"name\": \"a\", \"job\": {…}, "
      "\"depends_on\": [\"b\"], \"weight\": 1, \"children\": [… nested …], \"on_child_failure\": \"fail\"}, …], "
      "\"on_child_failure\": \"fail\" | \"ignore\" | \"continue\"}`, at most 500 jobs. A job with children (or "
      "`depends_on`) is `blocked` until they have ended; its handler then reads their results (`ctx.children`). "
      "`fail` (default): a child that does not complete fails its parent unrun. All or nothing: a bad job, name, "
      "dependency or a cycle refuses the whole flow with a problem naming the place (`errors[0].key`, e.g. "
      "`children[1].depends_on`); nothing is created. With an `Idempotency-Key`, a repeat returns the same flow.",
      responses={202: ResponseSpec(FlowAccepted, description="Stored", generate_examples=False)})
async def submit_flow(request: Request[Any, Any, Any], flows: NamedDependency[Flows],
                      idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
                      traceparent: Annotated[str | None, HeaderParameter(name="traceparent")] = None,
                      ) -> Response[FlowAccepted]:
    try:
        submission = flow_decoder.decode(await request.body())
    except msgspec.DecodeError as exc:  # (ValidationError too: a mistyped or unknown field)
        raise Malformed(str(exc), title="Invalid flow", errors=[{"source": "body", "message": str(exc)}]) from None
    take_submit_tokens(request, submission.job_count())
    record, planned, fresh = await flows.create(submission, idempotency_key, traceparent)
    headers = {"Location": f"/api/flows/{record.root}"}
    if not fresh:
        headers["Idempotent-Replayed"] = "true"
    jobs = [FlowJob(id=p.id, name=p.name, parent=p.parent) for p in planned]
    return Response(FlowAccepted(id=record.root, jobs=jobs, links=links(record.root)), status_code=202, headers=headers)


@get("/api/flows/{flow_id:str}", errors=(404, 503),
     summary="A flow as a tree: each job's state and progress rolled up from its children")
async def get_flow(flows: NamedDependency[Flows], flow_id: FromPath[str]) -> FlowTreeNode:
    return await flows.tree(flow_id)


@post("/api/flows/{flow_id:str}/cancel", status_code=202, summary="Cancel every job of the flow not yet ended",
      errors=(404, 409, 503))
async def cancel_flow(flows: NamedDependency[Flows], flow_id: FromPath[str]) -> dict[str, str]:
    return {"id": flow_id, "status": await flows.cancel(flow_id)}


flow_handlers = [submit_flow, get_flow, cancel_flow]
