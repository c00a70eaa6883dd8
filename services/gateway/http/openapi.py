"""The OpenAPI document, made to say what the server does.

Litestar writes the document from the handlers' signatures; what the handlers cannot say is added
here, in one place, each time `/schema/openapi.json` is served: errors are RFC 9457 problems
(`application/problem+json`) with every status a route can answer; event streams are
`text/event-stream`; an upload's body is the file itself; ids, limits and filters carry the
patterns and bounds the server enforces; bodies refuse unknown fields; a job's `type` is one of
the types the running processors serve right now. `make test` runs schemathesis against it
(tests/test_openapi.py), so the document cannot drift from the server again.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from jobline.contract.alerts import ALERT_NAME_PATTERN
from jobline.contract.history import MAX_PAGE
from jobline.contract.names import (
    JOB_ID_PATTERN,
    JOB_TYPE_PATTERN,
    SCHEDULE_NAME_PATTERN,
    SERVICE_NAME_RE,
    SIGNAL_NAME_PATTERN,
)
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN
from jobline.contract.vocabulary import ALL_STATUSES, TERMINAL_STATUSES
from jobline.contract.workers import WORKER_ID_PATTERN

from .limits import (
    MAX_LOG_PAGE,
    MAX_SEQ,
    MAX_UNIX_TIME,
)
from .openapi_bodies import complete_bodies, flow_schemas, form_schema

PROBLEM = "application/problem+json"
EVENT_STREAM = "text/event-stream"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "the fields at fault (key, source)"},
    },
}

WHY = {
    400: "Malformed input (the problem names the field), or a Host this gateway does not answer for",
    401: "No valid API token (only with JOBLINE_API_TOKENS set)",
    403: "A write from a foreign origin, or what the token's role or scope does not cover (docs/api.md, Roles)",
    404: "No such job (or upload, or artifact)",
    408: "The client stopped sending the body",
    409: "Not possible in the current state",
    413: "The body is over the limit",
    415: "A write whose body is not JSON (the upload: a multipart form)",
    416: "The byte range asked for starts beyond the end of the file",
    422: "Well-formed but refused: an unknown job type, a limit out of range",
    429: "Too many open streams or submissions from this client (Retry-After says when to retry)",
    503: "The event store or the history service did not answer; nothing was changed",
}

STREAMS = {("get", "/api/jobs/{job_id}/events"), ("get", "/api/events"), ("get", "/api/logs/stream"),
           ("get", "/api/batches/{batch_id}/events"), ("get", "/api/operations/{operation_id}/events")}
NO_CONTENT = {  # answers without a body
    ("get", "/api/jobs/{job_id}"): {304: "Not modified since the ETag in If-None-Match"},
    ("get", "/api/jobs/{job_id}/events"): {204: "The job has ended and the client saw its end: EventSource stops"},
    ("get", "/api/jobs/{job_id}/logs"): {204: "(follow=1) the job has ended and the client saw its end"},
    ("post", "/api/session"): {204: "Signed in: the session cookie is set"},
    ("post", "/api/jobs/form"): {303: "(Accept: text/html) see the job's page, or the form's `redirect`"},
}


def _list_of(words: Any) -> str:
    alternatives = "|".join(re.escape(str(w)) for w in words)
    return f"^({alternatives})(,({alternatives}))*$"


_ID = JOB_ID_PATTERN.strip("^$")


def _type_list() -> str:
    name = JOB_TYPE_PATTERN.strip("^$")
    return f"^{name}(,{name})*$"


# Query, path and header parameters: the bounds and patterns the handlers check.
PARAMETERS: dict[str, dict[str, Any]] = {
    "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "upload_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "job_type": {"type": "string", "pattern": JOB_TYPE_PATTERN},
    "batch_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "operation_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "flow_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "worker_id": {"type": "string", "pattern": WORKER_ID_PATTERN},
    "signal": {"type": "string", "pattern": SIGNAL_NAME_PATTERN},
    "name": {"type": "string", "pattern": "^[^/\\u0000-\\u001f\\u007f]{1,255}$"},
    "status": {"type": "string", "pattern": _list_of(ALL_STATUSES)},
    "type": {"type": "string", "pattern": _type_list()},
    "error": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f]{1,200}$"},
    "owner": {"type": "string", "pattern": f"^{OWNER_PATTERN.pattern}(,{OWNER_PATTERN.pattern})*$"},
    "tag": {"type": "string", "pattern": f"^{TAG_PATTERN.pattern}(,{TAG_PATTERN.pattern}){{0,{MAX_TAGS - 1}}}$"},
    **{name: {"type": "number", "minimum": 0, "maximum": MAX_UNIX_TIME}
       for name in ("created_after", "created_before", "finished_after", "finished_before")},
    "before": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
    "replay": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
    "from": {"type": "number", "minimum": 0},
    "window": {"type": "string", "enum": ["hour", "day", "week"]},
    "service": {"type": "string", "pattern": SERVICE_NAME_RE.pattern},
    "level": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
    "Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255},
    "at": {"anyOf": [{"type": "string", "pattern": r"^seq:[0-9]{1,18}$"},
                     {"type": "string", "pattern": r"^[0-9]{1,18}(\.[0-9]{1,9})?$"},
                     {"type": "string", "format": "date-time"}]},
}
LIMITS = {"/api/jobs": MAX_PAGE, "/api/jobs/{job_id}/logs": MAX_LOG_PAGE}
STRICT_QUERY = {"status", "type", "error", "owner", "tag"}  # read as text by the handler: `null` is a (bad) value there
# A parameter that means something else on one path.
ON_PATH: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/stats/activity", "type"): {"type": "string", "pattern": JOB_TYPE_PATTERN},
    ("/api/events", "type"): {"type": "string", "pattern": _type_list()},
    ("/api/events", "status"): {"type": "string", "pattern": _list_of(ALL_STATUSES)},
    ("/api/jobs/retry", "status"): {"type": "string", "pattern": _list_of(sorted(TERMINAL_STATUSES))},
    ("/api/jobs/delete", "status"): {"type": "string", "pattern": _list_of(sorted(TERMINAL_STATUSES))},
    ("/api/events", "jobs"): {"type": "string", "pattern": f"^{_ID}(,{_ID})*$"},
    ("/api/jobs/{job_id}/logs", "after"): {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1},
    **{(path, "name"): {"type": "string", "pattern": SCHEDULE_NAME_PATTERN}
       for path in ("/api/schedules/{name}", "/api/schedules/{name}/pause", "/api/schedules/{name}/resume")},
    ("/api/alerts/{name}", "name"): {"type": "string", "pattern": ALERT_NAME_PATTERN},
}
# One event of a stream, as an SSE client parses it (schemathesis checks each).
SSE_EVENT = {"type": "object", "properties": {"event": {"type": "string"}, "data": {"type": "string"},
                                              "id": {"type": "string", "pattern": "^[0-9]+$"},
                                              "retry": {"type": "integer"}}}
TIMELINE = {"type": "object", "required": ["job_id", "events"], "properties": {
    "job_id": {"type": "string"},
    "events": {"type": "array", "items": {"type": "object", "required": ["seq", "subject", "stored_at", "event"],
                                          "properties": {"seq": {"type": "integer"}, "subject": {"type": "string"},
                                                         "stored_at": {"type": "number"}, "event": {"type": "object"}}}}}}
# Success bodies the handlers build themselves (Litestar sees bytes).
# JSON, or (Accept: text/event-stream) their progress as events: the handler's `Body | Response` says neither
PROGRESS = {("post", "/api/jobs/cancel"): "BulkCancelled", ("post", "/api/jobs/delete"): "BulkDeleted"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/jobs/{job_id}"): {"$ref": "#/components/schemas/JobState"},
    ("get", "/api/jobs/{job_id}/state"): {"$ref": "#/components/schemas/JobState"},
    ("get", "/api/jobs/{job_id}/timeline"): TIMELINE,
}


def describe(document: dict[str, Any], *, job_types: list[str], max_timeout_s: float, max_attempts: int,
             tokens: bool, webhooks: bool, max_delay_s: float = 366 * 86400.0, max_wait_s: float = 60.0,
             params_schemas: dict[str, dict[str, Any]] | None = None,
             errors: dict[tuple[str, str], tuple[int, ...]] | None = None) -> dict[str, Any]:
    """The document Litestar generated, completed (a copy: the one given is Litestar's cache).
    `params_schemas`: each served type's params schema (a job's params are checked against it);
    `errors`: the statuses each operation declares beside its handler (`errors=`), by (method, path)."""
    doc = copy.deepcopy(document)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    complete_bodies(schemas, job_types=job_types, max_timeout_s=max_timeout_s, max_attempts=max_attempts, webhooks=webhooks,
            max_delay_s=max_delay_s, params_schemas=params_schemas or {})
    if tokens:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (its role: docs/api.md)"},
            "accessToken": {"type": "apiKey", "in": "query", "name": "access_token",
                            "description": "A stream token (POST /api/stream-tokens): reads, within its scope, and "
                                           "writes what its rights allow; or a form token (POST /api/form-tokens)"}}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _parameters(operation, path, max_wait_s)
            _responses(operation, method, path, tokens=tokens, declared=(errors or {}).get((method, path), ()))
            if tokens and path.startswith("/api/"):
                operation["security"] = [{"bearer": []}, {"accessToken": []}]
    upload = doc.get("paths", {}).get("/api/uploads", {}).get("post")
    if upload is not None:
        upload["requestBody"] = {"required": True, "description": "The file itself (its own Content-Type is kept)",
                                 "content": {"application/octet-stream": {
                                     "schema": {"type": "string", "format": "binary", "minLength": 1}}}}
    flow = doc.get("paths", {}).get("/api/flows", {}).get("post")
    if flow is not None and "JobSubmission" in schemas:
        schemas.update(flow_schemas(schemas["JobSubmission"]))
        flow["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/FlowSubmission"}}}}
    signal = doc.get("paths", {}).get("/api/jobs/{job_id}/signals/{signal}", {}).get("post")
    if signal is not None:
        signal["requestBody"] = {"required": False, "description": "The signal's payload: any JSON (none: null)",
                                 "content": {"application/json": {"schema": {}}}}
    form = doc.get("paths", {}).get("/api/jobs/form", {}).get("post")
    if form is not None:
        form["requestBody"] = {"required": True, "description": "The job form (also accepted at POST /api/jobs)",
                               "content": {"multipart/form-data": {"schema": form_schema(job_types, params_schemas or {})}}}
    return doc


def _parameters(operation: dict[str, Any], path: str, max_wait_s: float) -> None:
    for parameter in operation.get("parameters", []):
        name = parameter.get("name")
        if name == "wait":
            parameter["schema"] = {"type": "number", "minimum": 0, "maximum": max_wait_s}
            continue
        if name == "limit" and path in LIMITS:
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": LIMITS[path], "default": 50}
            continue
        schema = ON_PATH.get((path, name)) or PARAMETERS.get(name)
        if schema is None:
            continue
        # Litestar reads `null` as no value for an optional parameter (`?before=null`): say so.
        nullable = "null" in str(parameter.get("schema", {})) and name not in STRICT_QUERY
        parameter["schema"] = {"oneOf": [schema, {"type": "null"}]} if nullable else schema


def _problem(status: int) -> dict[str, Any]:
    return {"description": WHY[status], "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _responses(operation: dict[str, Any], method: str, path: str, *, tokens: bool, declared: tuple[int, ...]) -> None:
    responses: dict[str, Any] = operation["responses"]
    key = (method, path)
    for code in list(responses):
        if code.isdigit() and int(code) >= 400:
            del responses[code]  # Litestar's own error shape ({status_code, detail, extra}) is not what is sent
    if key in STREAMS:
        ok = responses.get("200", {"description": "The event stream"})
        ok["content"] = {EVENT_STREAM: {"schema": SSE_EVENT}}
        responses["200"] = ok
    if key == ("get", "/api/jobs/{job_id}/logs"):
        responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}},
                                       EVENT_STREAM: {"schema": SSE_EVENT}}
    if key in BODIES:
        responses["200"]["content"] = {"application/json": {"schema": BODIES[key]}}
    if key in PROGRESS and "200" in responses:
        responses["200"]["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{PROGRESS[key]}"}},
                                       EVENT_STREAM: {"schema": SSE_EVENT}}
    for empty, description in NO_CONTENT.get(key, {}).items():
        responses[str(empty)] = {"description": description}
    if path.startswith("/api/"):
        errors: set[int] = {400, *declared}  # (400: any malformed input, a foreign Host)
        if tokens:
            errors |= {401, 403}  # (403: what the token's role or scope does not cover)
        if method == "post":
            errors |= {403, 415}
        for status in sorted(errors):
            responses[str(status)] = _problem(status)


_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]+\}")


def declared_errors(app: Litestar) -> dict[tuple[str, str], tuple[int, ...]]:
    """(method, path) → the error statuses its handler declares (`errors=` beside it)."""
    declared: dict[tuple[str, str], tuple[int, ...]] = {}
    for route in app.routes:
        path = _TYPED_PARAMETER.sub(r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            for method in getattr(handler, "http_methods", ()):
                declared[(method.lower(), path)] = tuple(handler.opt.get("errors", ()))
    return declared


class DescribedJson(JsonRenderPlugin):
    """`/schema/openapi.json`: Litestar's document, completed by `describe` for this gateway."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        settings = getattr(request.app.state, "settings", None)
        auth = getattr(request.app.state, "auth", None)
        catalogue = getattr(request.app.state, "catalogue", None)
        types = catalogue.types if catalogue is not None else {}
        document = describe(openapi_schema, job_types=sorted(types), errors=declared_errors(request.app),
                            params_schemas={name: info.params_schema for name, info in types.items()},
                            max_timeout_s=settings.max_timeout_s if settings else 86400.0,
                            max_attempts=settings.max_attempts if settings else 100,
                            max_delay_s=settings.effective_max_delay_s if settings else 366 * 86400.0,
                            max_wait_s=settings.max_wait_s if settings else 60.0,
                            tokens=bool(auth and auth.enabled), webhooks=bool(settings and settings.webhook_secrets))
        return self.render_json(request, document)
