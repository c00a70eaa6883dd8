"""`POST /api/jobs` as a `multipart/form-data` form: a job and its files in one request.

A web app's upload page posts a `<form>`: `type` names the job type, `params` (JSON) and any other
text field give its params (a field `height=720` is params.height, converted by the type's params
schema), and each file part is streamed into the object store as an upload whose id becomes the
param of its field name. Nothing is stored unless the whole form is good: files are spooled (to
disk beyond 1 MiB, never whole in memory, held to JOBLINE_MAX_UPLOAD_BYTES each) until the form
has arrived and the submission has passed every check a JSON submission passes.

The request is routed to the handler of `/api/jobs/form` before routing (`route_forms`), so the
JSON path keeps its own typed handler untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from jobline.contract.events import JobTypeInfo
from jobline.contract.submissions import JobSubmission

from ..http.auth import FORM_PATH
from ..http.limits import MAX_FORM_FIELD_BYTES, MAX_FORM_PARTS
from ..http.problems import ROUTED_FROM, Problem
from .objects import SpooledUpload, within

# Fields that are not params: what the JSON body has besides `params`, and the form's own controls.
OPTIONS = {"timeout_s": float, "queue_timeout_s": float, "max_attempts": int, "webhook_url": str, "run_at": str,
           "delay_s": float, "concurrency_key": str, "priority": int, "unique_key": str, "unique_mode": str,
           "unique_window_s": float}
CONTROLS = frozenset({"type", "params", "redirect", "idempotency_key", "access_token"})


def route_forms(app: ASGIApp) -> ASGIApp:
    """Send a multipart `POST /api/jobs` to the form handler (Litestar routes by path and method,
    not by content type)."""

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope.get("method") == "POST" and scope["path"] == "/api/jobs":
            for key, value in scope.get("headers", []):
                if key == b"content-type" and value[:19].lower() == b"multipart/form-data":
                    routed: dict[str, Any] = {**scope, "path": FORM_PATH, "raw_path": FORM_PATH.encode(),
                                              ROUTED_FROM: scope["path"]}
                    scope = cast(Scope, routed)
                    break
        await app(scope, receive, send)

    return router


@dataclass
class JobForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[tuple[str, SpooledUpload]] = field(default_factory=list)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def close(self) -> None:
        for _, spooled in self.files:
            spooled.close()


def _bad(detail: str, key: str | None = None) -> Problem:
    if key is None:
        return Problem(400, "Bad form", detail)
    return Problem(400, "Bad form", detail, errors=[{"key": key, "source": "body"}])


async def _then_end(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body's non-empty chunks, then b"" (the parser's end of input)."""
    async for chunk in body:
        if chunk:
            yield chunk
    yield b""


class _Parts:
    """The form as its parser's events arrive: text fields kept (bounded), files spooled."""

    def __init__(self, file_limit: int):
        self.form = JobForm()
        self._file_limit = file_limit
        self._text_bytes = 0
        self._text: bytearray | None = None
        self.spooled: SpooledUpload | None = None  # the file part being read
        self._name = ""

    def take(self, event: MultipartSegment | bytes | None) -> None:
        if isinstance(event, bytes):
            self._data(event)
        elif event is None:
            self._end_of_part()
        else:
            self._name = event.name
            if event.filename is not None:
                self.spooled = SpooledUpload(event.filename[:255] or "upload",
                                             event.content_type or "application/octet-stream", self._file_limit)
            else:
                self._text = bytearray()

    def _data(self, chunk: bytes) -> None:
        if self.spooled is not None:
            self.spooled.write(chunk)  # UploadTooLarge beyond the limit: the route says 413
        elif self._text is not None:
            self._text_bytes += len(chunk)
            if self._text_bytes > MAX_FORM_FIELD_BYTES:
                raise Problem(413, "Form too large", f"the form's text fields exceed {MAX_FORM_FIELD_BYTES} "
                              "bytes; big inputs are files")
            self._text += chunk

    def _end_of_part(self) -> None:
        name, spooled = self._name, self.spooled
        if spooled is not None and (spooled.size or spooled.filename):
            self.form.files.append((name, spooled))
        elif spooled is not None:
            spooled.close()  # a file input left empty
        elif self._text is not None:
            try:
                self.form.fields.setdefault(name, []).append(self._text.decode())
            except UnicodeDecodeError:
                raise _bad(f"field {name!r} is not UTF-8 text", name) from None
        self._text, self.spooled = None, None


async def read_form(body: AsyncIterator[bytes], content_type: str, *, file_limit: int, idle_timeout_s: float) -> JobForm:
    """The whole form, its files spooled (raises Problem 400/408/413 before anything is stored)."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary:
        raise _bad("a multipart/form-data body needs a boundary in its Content-Type")
    parts = _Parts(file_limit)
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_FORM_PARTS, max_header_count=16) as parser:
            async for chunk in _then_end(within(body, idle_timeout_s)):
                for event in parser.parse(chunk):
                    parts.take(event)
            if not parser.closed:
                raise _bad("the multipart body ended before its closing boundary")
    except ParserLimitReached as exc:
        parts.form.close()
        raise Problem(413, "Form too large", f"{exc} (at most {MAX_FORM_PARTS} parts)") from exc
    except ParserError as exc:
        parts.form.close()
        raise _bad(f"not a valid multipart form: {exc}") from exc
    except BaseException:
        if parts.spooled is not None:
            parts.spooled.close()
        parts.form.close()
        raise
    return parts.form


def _property_types(info: JobTypeInfo | None) -> dict[str, set[str]]:
    """JSON types of each param, from the type's params schema (`$ref` to its `$defs` resolved)."""
    schema = info.params_schema if info is not None else {}
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        schema = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    types: dict[str, set[str]] = {}
    for prop, spec in schema.get("properties", {}).items():
        kinds = {spec["type"]} if isinstance(spec.get("type"), str) else set(spec.get("type") or [])
        for option in spec.get("anyOf", []):
            if isinstance(option.get("type"), str):
                kinds.add(option["type"])
        types[prop] = kinds
    return types


def _convert(name: str, raw: str, kinds: set[str]) -> Any:
    """A form field's text as the param's type (the schema says which); text when it says nothing."""
    value = raw.strip()
    try:
        if "integer" in kinds and value.lstrip("-").isdigit():
            return int(value)
        if "number" in kinds and value:
            return float(value)
        if "boolean" in kinds and value.lower() in ("true", "on", "1", "yes", "false", "off", "0", "no"):
            return value.lower() in ("true", "on", "1", "yes")
        if kinds & {"array", "object"} and value[:1] in ("[", "{"):
            return json.loads(value)
    except ValueError:
        pass
    if "array" in kinds and value[:1] != "[":
        return raw  # one item of a list sent as repeated fields
    if kinds and "string" not in kinds:
        raise _bad(f"field {name!r}: {raw!r} is not a valid {'/'.join(sorted(kinds))}", name)
    return raw


def submission_of(form: JobForm, info: JobTypeInfo | None) -> JobSubmission:
    """The job the form asks for (its files not yet stored: their params are filled in later)."""
    job_type = (form.first("type") or "").strip()
    if not job_type:
        raise _bad("the form has no `type` field naming the job type", "type")
    params: dict[str, Any] = {}
    raw_params = form.first("params")
    if raw_params is not None and raw_params.strip():
        try:
            params = json.loads(raw_params)
        except ValueError as exc:
            raise _bad(f"`params` is not JSON: {exc}", "params") from exc
        if not isinstance(params, dict):
            raise _bad("`params` must be a JSON object", "params")
    kinds = _property_types(info)
    options: dict[str, Any] = {}
    for name, values in form.fields.items():
        if name in CONTROLS:
            continue
        if name in OPTIONS:
            if values[0].strip():
                try:
                    options[name] = OPTIONS[name](values[0].strip())
                except ValueError:
                    raise _bad(f"field {name!r}: {values[0]!r} is not a {OPTIONS[name].__name__}", name) from None
            continue
        converted = [_convert(name, v, kinds.get(name, set())) for v in values if v != "" or not kinds.get(name)]
        if converted:
            params[name] = converted[0] if len(converted) == 1 and "array" not in kinds.get(name, set()) else converted
    for name, _ in form.files:
        params.pop(name, None)  # filled in with the upload ids once stored
    try:
        return msgspec.convert({"type": job_type, "params": params, **options}, JobSubmission)
    except msgspec.ValidationError as exc:
        raise _bad(str(exc)) from exc


def fill_files(submission: JobSubmission, form: JobForm, upload_ids: list[str]) -> None:
    """Each file field's param: its upload's id (several files in one field: a list of them)."""
    by_field: dict[str, list[str]] = {}
    for (name, _), upload_id in zip(form.files, upload_ids, strict=True):
        by_field.setdefault(name, []).append(upload_id)
    for name, ids in by_field.items():
        submission.params[name] = ids[0] if len(ids) == 1 else ids


# A path on this gateway as a browser reads it: browsers take `\` for `/` and drop tabs and line
# breaks, so `/\evil.example/x` is `//evil.example/x` — another site. Only plain path characters.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%?=&#+,;:@!$'()*{}-]*")


def _is_local_path(target: str) -> bool:
    return _LOCAL_PATH.fullmatch(target) is not None


def redirect_target(raw: str, job_id: str, own_origins: frozenset[str]) -> str:
    """Where a browser goes after the form: a path on this gateway, or a page of an origin in
    JOBLINE_CORS_ORIGINS (never anywhere else: no open redirect); `{id}` becomes the job id."""
    target = raw.replace("{id}", job_id)
    parts = urlsplit(target)
    if _is_local_path(target):
        return target
    if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}".lower() in own_origins:
        return target
    raise _bad(f"redirect {raw!r} is neither a path here nor on an origin in JOBLINE_CORS_ORIGINS", "redirect")


def wants_html(accept: str) -> bool:
    """A browser navigating (a form without script) asks for HTML first; fetch() asks for */*."""
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")
