"""Every error as RFC 9457 problem details (`application/problem+json`): the one place where the
domain's errors (jobline.jobs.errors) become HTTP statuses."""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send

from jobline.jobs.errors import Conflict, Invalid, JobError, Malformed, NotFound, TooLarge, Unavailable
from jobline.runtime.kv_records import RecordKeptChanging

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
ROUTED_FROM = "jobline.routed_from"  # scope key: the path a request had before the gateway re-routed it


class Problem(HTTPException):
    """Raise with a status, a short title, a detail and any extension members."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extensions: Any):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title = title
        self.extensions = extensions

    def within(self, place: str, **extensions: Any) -> Problem:
        """The same problem about a part of a bigger request (`jobs[3]`, `children[0].job`): its
        detail and its errors' keys say where."""
        errors = [{**e, "key": f"{place}.{e['key']}" if e.get("key") else place}
                  for e in self.extensions.get("errors", [])] or [{"key": place, "source": "body"}]
        return Problem(self.status_code, self.title, f"{place}: {self.detail}", headers=self.headers,
                       **{**self.extensions, "errors": errors, **extensions})


async def send_problem(send: Send, status: int, title: str, detail: str,
                       headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A problem sent straight through ASGI, by middleware that answers before any route does."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                    *(headers or [])]}
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)


def problem_response(status: int, title: str, detail: str, instance: str, **extensions: Any) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance, **extensions}
    return Response(body, status_code=status, media_type=MEDIA_TYPE)


def _instance(request: Request[Any, Any, Any]) -> str:
    """The path the client asked for (a multipart POST /api/jobs is routed to /api/jobs/form)."""
    return str(request.scope.get(ROUTED_FROM) or request.url.path)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, Problem):
        response = problem_response(exc.status_code, exc.title, exc.detail, _instance(request), **exc.extensions)
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    extensions: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        errors = exc.extra if isinstance(exc.extra, list) else [exc.extra]
        extensions["errors"] = errors
        messages = [e.get("message", "") + (f" (field: {e['key']})" if e.get("key") else "")
                    for e in errors if isinstance(e, dict)]
        detail = "; ".join(m for m in messages if m) or detail
    response = problem_response(exc.status_code, _title(exc.status_code), detail, _instance(request), **extensions)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def handle_malformed_body(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A body the JSON decoder gives up on in a way Litestar does not turn into a 400 itself:
    nested deeper than it can follow (RecursionError), or not UTF-8 at all."""
    why = "nested too deeply" if isinstance(exc, RecursionError) else "not valid UTF-8"
    return problem_response(400, "Malformed body", f"the request body could not be read: it is {why}", _instance(request),
                            errors=[{"key": "body", "source": "body", "message": why}])


# What each of the domain's errors is in HTTP (the handlers of every route rely on this table).
STATUS_OF: dict[type[JobError], int] = {Malformed: 400, NotFound: 404, Conflict: 409, TooLarge: 413, Invalid: 422,
                                        Unavailable: 503}


def status_of(error: JobError) -> int:
    return next((status for kind, status in STATUS_OF.items() if isinstance(error, kind)), 422)


def handle_job_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, JobError)
    extensions: dict[str, Any] = {**exc.extra}
    if exc.errors:
        extensions["errors"] = exc.errors
    return problem_response(status_of(exc), exc.title, exc.detail, _instance(request), **extensions)


def handle_kept_changing(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    return problem_response(503, "Busy", str(exc), _instance(request))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, _instance(request))
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error",
                            "unexpected error; see the gateway log", _instance(request))


exception_handlers = {HTTPException: handle_http_exception, RecursionError: handle_malformed_body,
                      UnicodeDecodeError: handle_malformed_body, JobError: handle_job_error,
                      RecordKeptChanging: handle_kept_changing, Exception: handle_unexpected}
