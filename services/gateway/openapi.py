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
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from jobline.contract.flows import MAX_FLOW_JOBS
from jobline.contract.history import MAX_PAGE
from jobline.contract.names import (
    JOB_ID_PATTERN,
    JOB_TYPE_PATTERN,
    PRIORITY_MAX,
    PRIORITY_MIN,
    SCHEDULE_NAME_PATTERN,
    SERVICE_NAME_RE,
)
from jobline.contract.vocabulary import ALL_STATUSES

from .limits import (
    MAX_BATCH_JOBS,
    MAX_CONCURRENCY_KEY,
    MAX_FLOW_DEPTH,
    MAX_IDEMPOTENCY_KEY,
    MAX_LOG_PAGE,
    MAX_SEQ,
    MAX_UNIX_TIME,
    MAX_WEBHOOK_URL,
)

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
    403: "A write from a foreign origin, or a read-only stream token",
    404: "No such job (or upload, or artifact)",
    408: "The client stopped sending the body",
    409: "Not possible in the current state",
    413: "The body is over the limit",
    415: "A write whose body is not JSON (the upload: a multipart form)",
    422: "Well-formed but refused: an unknown job type, a limit out of range",
    429: "Too many open streams or submissions from this client (Retry-After says when to retry)",
    503: "The event store or the history service did not answer; nothing was changed",
}

# The statuses each operation may answer besides its success and what every route may answer.
ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/jobs"): (409, 413, 422, 503),
    ("get", "/api/jobs"): (503,),
    ("get", "/api/jobs/{job_id}"): (404, 503),
    ("post", "/api/jobs/{job_id}/cancel"): (404, 409, 503),
    ("get", "/api/jobs/{job_id}/timeline"): (404, 503),
    ("get", "/api/jobs/{job_id}/state"): (404, 503),
    ("get", "/api/jobs/{job_id}/events"): (404, 503),
    ("get", "/api/jobs/{job_id}/logs"): (404, 503),
    ("get", "/api/jobs/{job_id}/artifacts/{name}"): (404,),
    ("post", "/api/uploads"): (408, 413),
    ("post", "/api/jobs/form"): (400, 408, 409, 413, 415, 422, 503),
    ("post", "/api/form-tokens"): (409,),
    ("get", "/api/uploads/{upload_id}"): (404,),
    ("get", "/api/stats/counts"): (503,),
    ("get", "/api/stats/activity"): (503,),
    ("post", "/api/session"): (401,),
    ("post", "/api/stream-tokens"): (409,),
    ("post", "/api/schedules"): (409, 413, 422, 503),
    ("get", "/api/schedules"): (503,),
    ("get", "/api/schedules/{name}"): (404, 503),
    ("post", "/api/schedules/{name}/pause"): (404, 503),
    ("post", "/api/schedules/{name}/resume"): (404, 503),
    ("delete", "/api/schedules/{name}"): (404, 503),
    ("post", "/api/batches"): (400, 409, 413, 422, 429, 503),
    ("get", "/api/batches"): (503,),
    ("post", "/api/flows"): (400, 409, 413, 422, 429, 503),
    ("get", "/api/flows/{flow_id}"): (404, 503),
    ("post", "/api/flows/{flow_id}/cancel"): (404, 409, 503),
    ("get", "/api/batches/{batch_id}"): (404, 503),
    ("post", "/api/batches/{batch_id}/cancel"): (404, 503),
    ("get", "/api/batches/{batch_id}/events"): (404, 503),
    ("get", "/api/queues"): (503,),
    ("get", "/api/queues/{job_type}"): (404, 503),
    ("put", "/api/queues/{job_type}"): (404, 422, 503),
    ("post", "/api/queues/{job_type}/pause"): (404, 503),
    ("post", "/api/queues/{job_type}/resume"): (404, 503),
}
STREAMS = {("get", "/api/jobs/{job_id}/events"), ("get", "/api/events"), ("get", "/api/logs/stream"),
           ("get", "/api/batches/{batch_id}/events")}
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
    "flow_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "name": {"type": "string", "pattern": "^[^/\\u0000-\\u001f\\u007f]{1,255}$"},
    "status": {"type": "string", "pattern": _list_of(ALL_STATUSES)},
    "type": {"type": "string", "pattern": _type_list()},
    "error": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f]{1,200}$"},
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
STRICT_QUERY = {"status", "type", "error"}  # read as text by the handler: `null` is a (bad) value there
# A parameter that means something else on one path.
ON_PATH: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/stats/activity", "type"): {"type": "string", "pattern": JOB_TYPE_PATTERN},
    ("/api/events", "type"): {"type": "string", "pattern": _type_list()},
    ("/api/events", "status"): {"type": "string", "pattern": _list_of(ALL_STATUSES)},
    ("/api/events", "jobs"): {"type": "string", "pattern": f"^{_ID}(,{_ID})*$"},
    ("/api/jobs/{job_id}/logs", "after"): {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1},
    **{(path, "name"): {"type": "string", "pattern": SCHEDULE_NAME_PATTERN}
       for path in ("/api/schedules/{name}", "/api/schedules/{name}/pause", "/api/schedules/{name}/resume")},
}
# A few of the values a schedule accepts: the rest (any valid cron expression, any IANA zone) only
# the server can check, so they are documented in words (a fuzzer would take "0" for a valid cron).
CRON_EXAMPLES = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 3 * * *", "*/15 * * * *"]
ZONE_EXAMPLES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
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
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/jobs/{job_id}"): {"$ref": "#/components/schemas/JobState"},
    ("get", "/api/jobs/{job_id}/state"): {"$ref": "#/components/schemas/JobState"},
    ("get", "/api/jobs/{job_id}/timeline"): TIMELINE,
}


def describe(document: dict[str, Any], *, job_types: list[str], max_timeout_s: float, max_attempts: int,
             tokens: bool, webhooks: bool, max_delay_s: float = 366 * 86400.0, max_wait_s: float = 60.0,
             params_schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The document Litestar generated, completed (a copy: the one given is Litestar's cache).
    `params_schemas`: each served type's params schema (a job's params are checked against it)."""
    doc = copy.deepcopy(document)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    _bodies(schemas, job_types=job_types, max_timeout_s=max_timeout_s, max_attempts=max_attempts, webhooks=webhooks,
            max_delay_s=max_delay_s, params_schemas=params_schemas or {})
    if tokens:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _parameters(operation, path, max_wait_s)
            _responses(operation, method, path, tokens=tokens)
            if tokens and path.startswith("/api/"):
                operation["security"] = [{"bearer": []}]
    upload = doc.get("paths", {}).get("/api/uploads", {}).get("post")
    if upload is not None:
        upload["requestBody"] = {"required": True, "description": "The file itself (its own Content-Type is kept)",
                                 "content": {"application/octet-stream": {
                                     "schema": {"type": "string", "format": "binary", "minLength": 1}}}}
    flow = doc.get("paths", {}).get("/api/flows", {}).get("post")
    if flow is not None and "JobSubmission" in schemas:
        schemas.update(_flow_schemas(schemas["JobSubmission"]))
        flow["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/FlowSubmission"}}}}
    form = doc.get("paths", {}).get("/api/jobs/form", {}).get("post")
    if form is not None:
        # Any other field is a param (text, converted by the type's schema); `params` (a JSON object as
        # text) and the options are in the description (free text there would be "valid" yet refused).
        def form_of(job_type: str) -> dict[str, Any]:
            # A required param is a field of its own (text: an upload id; a file part is taken too).
            required = _required_params((params_schemas or {}).get(job_type, {}))
            return {"type": "object", "required": ["type", *required], "additionalProperties": {"type": "string"},
                    "properties": {"type": {"const": job_type},
                                   **{name: {"type": "string", "minLength": 1} for name in required}}}

        form["requestBody"] = {"required": True, "description": "The job form (also accepted at POST /api/jobs)",
                               "content": {"multipart/form-data": {"schema": {
                                   "oneOf": [form_of(job_type) for job_type in sorted(job_types)]}}}}
    return doc


def _bodies(schemas: dict[str, Any], *, job_types: list[str], max_timeout_s: float, max_attempts: int,
            webhooks: bool, max_delay_s: float, params_schemas: dict[str, dict[str, Any]]) -> None:
    submission = schemas.get("JobSubmission")
    if submission is not None:
        submission["additionalProperties"] = False  # unknown fields are refused (400)
        properties = submission.setdefault("properties", {})
        properties["type"] = {"type": "string", "enum": sorted(job_types)} if job_types else \
            {"type": "string", "pattern": JOB_TYPE_PATTERN, "description": "no processor serves any type yet"}
        bounded = {"type": "number", "exclusiveMinimum": 0, "maximum": max_timeout_s}
        for name in ("timeout_s", "queue_timeout_s"):
            properties[name] = {"oneOf": [bounded, {"type": "null"}]}
        properties["max_attempts"] = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": max_attempts},
                                                {"type": "null"}]}
        properties["concurrency_key"] = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": MAX_CONCURRENCY_KEY},
                                                   {"type": "null"}],
                                         "description": "e.g. the user id: with the type's per-key limit, one key's "
                                                        "jobs wait while another's run"}
        properties["priority"] = {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX,
                                  "description": "with a backlog, a higher priority starts first (oldest first within one)"}
        if not webhooks:
            properties.pop("webhook_url", None)  # refused (422) until JOBLINE_WEBHOOK_SECRETS is set
        else:
            properties["webhook_url"] = {"oneOf": [{"type": "string", "minLength": 8, "maxLength": MAX_WEBHOOK_URL,
                                                    "pattern": "^https?://[^/?#@]+"}, {"type": "null"}],
                                         "description": "http(s) URL of a public host (422 for one that does not "
                                                        "resolve or is private)"}
        properties["delay_s"] = {"oneOf": [{"type": "number", "minimum": 0, "maximum": max_delay_s}, {"type": "null"}],
                                 "description": "run it this many seconds from now (`scheduled` until then)"}
        # Which times are valid depends on the clock (the future, within JOBLINE_MAX_DELAY_S), which
        # no schema can say: documented in words, so that a fuzzer does not take a past time for a
        # valid one (it would be refused with 422).
        properties["run_at"] = {"oneOf": [{"type": "null"}], "description": (
            "an RFC 3339 time with its zone (e.g. 2026-12-01T08:00:00Z), in the future and at most "
            f"{max_delay_s:g} s ahead: the job is `scheduled` until then; not with delay_s (422 otherwise)")}
        submission = schemas["JobSubmission"] = _typed_params(submission, params_schemas, schemas)
    spec = schemas.get("ScheduleSpec")
    if spec is not None and submission is not None:
        spec["additionalProperties"] = False
        job = _without_times(submission)
        props = spec.setdefault("properties", {})
        props["job"] = {**job, "description": "a job as POST /api/jobs takes it, without run_at/delay_s"}
        props["name"] = {"type": "string", "pattern": SCHEDULE_NAME_PATTERN}
        props["cron"] = {"type": "string", "enum": CRON_EXAMPLES, "description": (
            "any cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, "
            "or @hourly/@daily/@weekly/@monthly/@yearly (422 when it is not one or never fires)")}
        props["timezone"] = {"type": "string", "enum": ZONE_EXAMPLES, "default": "UTC",
                             "description": "any IANA time zone name (422 for one the server does not know)"}
        props["catchup_window_s"] = {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 366 * 86400},
                                               {"type": "null"}]}
    batch = schemas.get("BatchSubmission")
    if batch is not None and submission is not None:
        batch["additionalProperties"] = False
        key = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY}, {"type": "null"}],
               "description": "unique within the batch"}
        job = _each_variant(submission, lambda v: v["properties"].update(idempotency_key=key))
        batch["properties"] = {"jobs": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_JOBS, "items": job}}
        batch["required"] = ["jobs"]
    limits = schemas.get("QueueLimits")
    if limits is not None:
        limits["additionalProperties"] = False
        limits["properties"] = {
            "concurrency": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 100_000}, {"type": "null"}]},
            "key_concurrency": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 100_000}, {"type": "null"}]},
            "rate_max": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 1_000_000}, {"type": "null"}]},
            "rate_window_s": {"type": "number", "minimum": 0.1, "maximum": 86400}}
    session = schemas.get("SessionRequest")
    if session is not None:
        session["additionalProperties"] = False


def _hoisted(schema: dict[str, Any], prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its own `$defs` moved into the document's components (`#/$defs/X` means
    the document's root in OpenAPI: it would point nowhere), named `<prefix>.X`."""
    schema = copy.deepcopy(schema)
    for name, definition in schema.pop("$defs", {}).items():
        schemas[f"{prefix}.{name}"] = definition

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = f"#/components/schemas/{prefix}.{ref.removeprefix('#/$defs/')}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)
        return node

    for name in [n for n in schemas if n.startswith(f"{prefix}.")]:
        rewrite(schemas[name])
    return rewrite(schema)  # type: ignore[no-any-return]


def _required_params(schema: dict[str, Any]) -> list[str]:
    """The params a type's schema requires (its top-level object, `$ref` to its `$defs` followed)."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        schema = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    return list(schema.get("required", []))


def _each_variant(schema: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A copy of a job's schema with `change` made to it (to each variant of a typed one)."""
    copied = copy.deepcopy(schema)
    for variant in copied.get("oneOf", [copied]):
        change(variant)
    return copied


def _typed_params(base: dict[str, Any], params_schemas: dict[str, dict[str, Any]],
                  schemas: dict[str, Any]) -> dict[str, Any]:
    """A job's schema as one variant per served type, each with its own params schema (`type`
    decides which): what the server checks at submit, said where a client can read it; every
    schema that holds a job (batches, schedules, flows) is made from it."""
    variants = []
    for job_type in sorted(params_schemas):
        variant = copy.deepcopy(base)
        variant["properties"]["type"] = {"const": job_type}
        params = params_schemas[job_type]
        if params:
            variant["properties"]["params"] = _hoisted(params, f"params.{job_type}", schemas)
            if _required_params(params):  # (without params, a required one is missing: 422)
                variant["required"] = sorted({*variant.get("required", []), "params"})
        variants.append(variant)
    if not variants:
        return base
    return {"oneOf": variants, "description": "a job: `type` decides what its params are (GET /api/types)"}


def _without_times(submission: dict[str, Any]) -> dict[str, Any]:
    """A job as POST /api/jobs takes it, for where it runs at a time not its own (a schedule's tick,
    a flow's turn): without run_at and delay_s (422 with them)."""
    def drop(variant: dict[str, Any]) -> None:
        for name in ("run_at", "delay_s"):
            variant["properties"].pop(name, None)

    return _each_variant(submission, drop)


def _flow_schemas(submission: dict[str, Any]) -> dict[str, Any]:
    job = {**_without_times(submission), "description": f"a job as POST /api/jobs takes it, without run_at/delay_s; "
           f"a flow has at most {MAX_FLOW_JOBS} jobs, {MAX_FLOW_DEPTH} levels below its root"}
    policy = {"type": "string", "enum": ["fail", "ignore", "continue"], "default": "fail"}
    child = {"type": "object", "required": ["job"], "additionalProperties": False, "properties": {
        "job": job, "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "depends_on": {"type": "array", "items": {"type": "string"}, "description": "names of siblings it waits for"},
        "weight": {"type": "number", "exclusiveMinimum": 0, "default": 1},
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/FlowChild"}},
        "on_child_failure": policy}}
    root = {"type": "object", "required": ["job", "children"], "additionalProperties": False, "properties": {
        "job": job, "children": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/FlowChild"}},
        "on_child_failure": policy}}
    return {"FlowChild": child, "FlowSubmission": root}


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


def _responses(operation: dict[str, Any], method: str, path: str, *, tokens: bool) -> None:
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
    for empty, description in NO_CONTENT.get(key, {}).items():
        responses[str(empty)] = {"description": description}
    if path.startswith("/api/"):
        errors: set[int] = {400, *ERRORS.get(key, ())}
        if tokens:
            errors.add(401)
        if method == "post":
            errors |= {403, 415}
        if key in STREAMS or key == ("get", "/api/jobs/{job_id}/logs") or key == ("post", "/api/jobs"):
            errors.add(429)
        for status in sorted(errors):
            responses[str(status)] = _problem(status)


class DescribedJson(JsonRenderPlugin):
    """`/schema/openapi.json`: Litestar's document, completed by `describe` for this gateway."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        core = getattr(request.app.state, "core", None)
        settings = getattr(core, "settings", None)
        auth = getattr(request.app.state, "auth", None)
        types = core.catalogue.types if core else {}
        document = describe(openapi_schema, job_types=sorted(types),
                            params_schemas={name: info.params_schema for name, info in types.items()},
                            max_timeout_s=settings.max_timeout_s if settings else 86400.0,
                            max_attempts=settings.max_attempts if settings else 100,
                            max_delay_s=settings.effective_max_delay_s if settings else 366 * 86400.0,
                            max_wait_s=settings.max_wait_s if settings else 60.0,
                            tokens=bool(auth and auth.enabled), webhooks=bool(settings and settings.webhook_secrets))
        return self.render_json(request, document)
