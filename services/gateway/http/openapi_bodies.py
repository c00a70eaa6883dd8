"""The request bodies of the OpenAPI document, completed beyond what Litestar derives: a job as one
variant per served type (its own params schema), the batch, schedule and flow bodies made from it,
the job form."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from jobline.contract.flows import MAX_FLOW_JOBS
from jobline.contract.names import JOB_ID_PATTERN, JOB_TYPE_PATTERN, PRIORITY_MAX, PRIORITY_MIN, SCHEDULE_NAME_PATTERN
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN

from .limits import (
    MAX_BATCH_JOBS,
    MAX_CONCURRENCY_KEY,
    MAX_FLOW_DEPTH,
    MAX_IDEMPOTENCY_KEY,
    MAX_WATCHED_JOBS,
    MAX_WEBHOOK_URL,
)

# A few of the values a schedule accepts: the rest (any valid cron expression, any IANA zone) only
# the server can check, so they are documented in words (a fuzzer would take "0" for a valid cron).
UNIQUE_FIELDS = ("unique_key", "unique_mode", "unique_window_s")
CRON_EXAMPLES = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 3 * * *", "*/15 * * * *"]
ZONE_EXAMPLES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]


def complete_bodies(schemas: dict[str, Any], *, job_types: list[str], max_timeout_s: float, max_attempts: int,
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
        properties["owner"] = {"oneOf": [{"type": "string", "pattern": f"^{OWNER_PATTERN.pattern}$"}, {"type": "null"}],
                               "description": "whose job it is (a tenant or user id)"}
        properties["tags"] = {"type": "array", "maxItems": MAX_TAGS, "uniqueItems": True,
                              "items": {"type": "string", "pattern": f"^{TAG_PATTERN.pattern}$"}}
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
        # Which combinations are valid (a window for throttle and debounce only, no run_at with
        # debounce) no schema here says: documented in words, only the defaults in the schema.
        properties["unique_key"] = {"oneOf": [{"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f]{1,255}$"},
                                              {"type": "null"}], "description": (
            "1 to 255 characters: one job of the type per key (POST /api/jobs only: 422 in a batch, flow or schedule)")}
        properties["unique_mode"] = {"type": "string", "enum": ["active"], "default": "active", "description": (
            "with unique_key: `active` (while its job has not ended, a submission answers it: 200), `throttle` (one "
            "per unique_window_s) or `debounce` (it starts unique_window_s after the last submission)")}
        properties["unique_window_s"] = {"oneOf": [{"type": "null"}], "description": (
            "throttle and debounce: the window, above 0 and at most 86400 s (422 otherwise, and with active)")}
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
        def keyed(variant: dict[str, Any]) -> None:
            variant["properties"].update(idempotency_key=key)
            for name in UNIQUE_FIELDS:  # (refused in a batch: 422)
                variant["properties"].pop(name, None)

        job = _each_variant(submission, keyed)
        batch["properties"] = {"jobs": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_JOBS, "items": job}}
        batch["required"] = ["jobs"]
    rule = schemas.get("AlertRule")
    if rule is not None:
        rule["additionalProperties"] = False
        rule["properties"] = {
            "type": {"oneOf": [{"type": "string", "pattern": JOB_TYPE_PATTERN}, {"type": "null"}]},
            "min_failures": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "window_s": {"type": "number", "minimum": 1, "maximum": 7 * 86400},
            "min_rate": {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]}}
        # (a URL is refused, 422, until JOBLINE_WEBHOOK_SECRETS is set)
        url = [{"type": "string", "minLength": 8, "maxLength": MAX_WEBHOOK_URL, "pattern": "^https?://[^/?#@]+"}]
        rule["properties"]["webhook_url"] = {"oneOf": [*(url if webhooks else []), {"type": "null"}],
                                             "description": "http(s) URL of a public host (422 otherwise)"}
    limits = schemas.get("QueueLimits")
    if limits is not None:
        limits["additionalProperties"] = False
        limits["properties"] = {
            "concurrency": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 100_000}, {"type": "null"}]},
            "key_concurrency": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 100_000}, {"type": "null"}]},
            "rate_max": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 1_000_000}, {"type": "null"}]},
            "rate_window_s": {"type": "number", "minimum": 0.1, "maximum": 86400}}
    scope = schemas.get("StreamTokenRequest")
    if scope is not None:  # jobs or an owner, not both (said in the route's description)
        scope["additionalProperties"] = False
        scope["properties"] = {
            "jobs": {"oneOf": [{"type": "array", "minItems": 1, "maxItems": MAX_WATCHED_JOBS,
                                "items": {"type": "string", "pattern": JOB_ID_PATTERN}}, {"type": "null"}]},
            "owner": {"oneOf": [{"type": "string", "pattern": f"^{OWNER_PATTERN.pattern}$"}, {"type": "null"}]},
            "tags": {"type": "array", "maxItems": MAX_TAGS, "items": {"type": "string", "pattern": f"^{TAG_PATTERN.pattern}$"}}}
    form_scope = schemas.get("FormTokenRequest")
    if form_scope is not None:
        form_scope["additionalProperties"] = False
        form_scope["properties"] = {
            "owner": {"oneOf": [{"type": "string", "pattern": f"^{OWNER_PATTERN.pattern}$"}, {"type": "null"}]}}
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
        for name in ("run_at", "delay_s", *UNIQUE_FIELDS):  # (unique keys: POST /api/jobs only)
            variant["properties"].pop(name, None)

    return _each_variant(submission, drop)


def flow_schemas(submission: dict[str, Any]) -> dict[str, Any]:
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


def form_schema(job_types: list[str], params_schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The job form: one variant per type. Any other field is a param (text, converted by the type's
    schema); `params` (a JSON object as text) and the options are in the description (free text there
    would be "valid" yet refused). A required param is a field of its own (text: an upload id; a file
    part is taken too)."""
    def form_of(job_type: str) -> dict[str, Any]:
        required = _required_params(params_schemas.get(job_type, {}))
        return {"type": "object", "required": ["type", *required], "additionalProperties": {"type": "string"},
                "properties": {"type": {"const": job_type},
                               **{name: {"type": "string", "minLength": 1} for name in required}}}

    return {"oneOf": [form_of(job_type) for job_type in sorted(job_types)]}
