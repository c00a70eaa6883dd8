"""HTTP route of signals: `POST /api/jobs/<id>/signals/<name>` resumes a job that waits for it
(`ctx.wait_for_signal`), or keeps it for a wait to come."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from jobline.jobs.errors import Malformed
from jobline.jobs.signals import MAX_SIGNAL_BYTES, SignalSent, send_signal
from jobline.jobs.writer import JobWriter

from ..http.job_scope import check_visible


@post("/api/jobs/{job_id:str}/signals/{signal:str}", status_code=202, summary="Send a job a signal",
      request_max_body_size=MAX_SIGNAL_BYTES, errors=(404, 409, 413, 503),
      description="The body (any JSON, or none: `null`) is the payload `ctx.wait_for_signal(name)` returns in the "
      "job's handler. A job waiting for it (`status` `waiting`, `awaiting_signal`) runs again at once "
      "(`resumes: true`); otherwise the signal is kept and a later wait returns it. Once per name: 409 when the "
      "signal was sent already or its wait timed out, or when the job has ended; 404 for no such job.")
async def signal_job(request: Request[Any, Any, Any], writer: NamedDependency[JobWriter], job_id: FromPath[str],
                     signal: FromPath[str]) -> Response[SignalSent]:
    raw = await request.body()
    try:
        payload = msgspec.json.decode(raw) if raw.strip() else None
    except msgspec.DecodeError as exc:
        raise Malformed(f"the body is not JSON: {exc}", title="Bad signal payload") from None
    job = check_visible(request.scope, await writer.reader.find(job_id))
    sent = await send_signal(writer.js, writer.names, job, signal, payload)
    return Response(sent, status_code=202)


signal_handlers = [signal_job]
