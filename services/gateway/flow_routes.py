"""HTTP routes of flows: thin handlers over flows.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter
from nats.js.kv import KeyValue

from . import flows
from .auth import take_submit_tokens
from .core import Core
from .limits import MAX_FLOW_BYTES
from .problems import Problem


def _flows(request: Request[Any, Any, Any]) -> tuple[Core, KeyValue]:
    core: Core = request.app.state.core
    if core.flows is None:
        raise Problem(503, "Flows unavailable", "this gateway has not opened the flows yet")
    return core, core.flows


@post("/api/flows", status_code=202, summary="Submit a flow: a parent job that runs once its children have ended",
      request_max_body_size=MAX_FLOW_BYTES,
      description="`{\"job\": <the parent, as POST /api/jobs takes it>, \"children\": [{\"name\": \"a\", \"job\": {…}, "
      "\"depends_on\": [\"b\"], \"weight\": 1, \"children\": [… nested …], \"on_child_failure\": \"fail\"}, …], "
      "\"on_child_failure\": \"fail\" | \"ignore\" | \"continue\"}`, at most 500 jobs. A job with children (or "
      "`depends_on`) is `blocked` until they have ended; its handler then reads their results (`ctx.children`). "
      "`fail` (default): a child that does not complete fails its parent unrun. All or nothing: a bad job, name, "
      "dependency or a cycle refuses the whole flow with a problem naming the place (`errors[0].key`, e.g. "
      "`children[1].depends_on`); nothing is created. With an `Idempotency-Key`, a repeat returns the same flow.",
      responses={202: ResponseSpec(flows.FlowAccepted, description="Stored", generate_examples=False)})
async def submit_flow(request: Request[Any, Any, Any],
                      idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
                      ) -> Response[flows.FlowAccepted]:
    core, kv = _flows(request)
    submission = flows.decode(await request.body())
    take_submit_tokens(request, flows.job_count(submission))
    record, planned, fresh = await flows.create(core, kv, submission, idempotency_key)
    headers = {"Location": f"/api/flows/{record.root}"}
    if not fresh:
        headers["Idempotent-Replayed"] = "true"
    jobs = [flows.FlowJob(id=p.id, name=p.name, parent=p.parent) for p in planned]
    return Response(flows.FlowAccepted(id=record.root, jobs=jobs, links=flows.links(record.root)), status_code=202,
                    headers=headers)


@get("/api/flows/{flow_id:str}", summary="A flow as a tree: each job's state and progress rolled up from its children")
async def get_flow(request: Request[Any, Any, Any], flow_id: FromPath[str]) -> flows.FlowTreeNode:
    core, kv = _flows(request)
    return await flows.tree(core, kv, flow_id)


@post("/api/flows/{flow_id:str}/cancel", status_code=202, summary="Cancel every job of the flow not yet ended")
async def cancel_flow(request: Request[Any, Any, Any], flow_id: FromPath[str]) -> dict[str, str]:
    core, kv = _flows(request)
    return {"id": flow_id, "status": await flows.cancel_flow(core, kv, flow_id)}


flow_handlers = [submit_flow, get_flow, cancel_flow]
