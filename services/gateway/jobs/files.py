"""HTTP routes of files: uploads (a job's inputs), artifacts (its results), and the job form that
brings its files with it (`POST /api/jobs` as `multipart/form-data`, routed to `/api/jobs/form`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import Stream

from jobline.contract.events import JobCreated, JobScheduled
from jobline.contract.submissions import JobSubmission
from jobline.jobs.catalogue import Catalogue
from jobline.jobs.errors import NotFound
from jobline.jobs.idempotency import fingerprint
from jobline.jobs.reader import JobReader, check_job_id
from jobline.jobs.writer import Held, JobWriter, new_job_id

from ..http.job_scope import check_visible, stamp
from ..http.problems import Problem
from ..settings import GatewaySettings
from .forms import fill_files, read_form, redirect_target, submission_of, wants_html
from .objects import (
    INLINE_TYPES,
    ObjectStores,
    RangeNotSatisfiable,
    Upload,
    UploadEmpty,
    UploadStalled,
    UploadTooLarge,
    byte_range,
    delete_upload,
    open_artifact,
    safe_type,
    sliced,
    store_upload,
    upload_info,
)
from .routes import links


class FormAccepted(msgspec.Struct):
    id: str
    status: str
    links: dict[str, str]
    uploads: list[Upload]


def stamped(connection_scope: Any, submission: JobSubmission) -> JobSubmission:
    """The submission as a token made for an owner sends it: that owner's, whatever the form says."""
    return stamp(connection_scope, submission, override=True)


@post("/api/jobs/form", status_code=202, summary="Submit a job with its files: a multipart form",
      request_max_body_size=None, errors=(400, 408, 409, 413, 415, 422, 503),
      description="What `POST /api/jobs` does with a `multipart/form-data` body (it is routed here). Fields: `type` "
      "(required), `params` (a JSON object, optional), any other text field is the param of its name (converted "
      "by the type's params schema: `height=720` is a number), `timeout_s`, `max_attempts`, `queue_timeout_s`, "
      "`webhook_url` as in JSON, `idempotency_key` (or the header), `redirect` (where a browser goes next: a path "
      "here or a page on an origin in JOBLINE_CORS_ORIGINS; `{id}` is the job id). Each file part is streamed "
      "into the object store as an upload whose id becomes the param of its field name. Nothing is stored "
      "unless the whole form is good (400, 413 beyond JOBLINE_MAX_UPLOAD_BYTES per file, 408 when the client "
      "stops sending). A browser navigating (Accept: text/html) is redirected (303) to `redirect` or the job's "
      "page; others get the JSON answer with the uploads. With API tokens, a page without script authenticates "
      "with `?access_token=` from `POST /api/form-tokens`.",
      responses={202: ResponseSpec(FormAccepted, description="Stored, with its uploads", generate_examples=False)})
async def submit_form(
    request: Request[Any, Any, Any],
    writer: NamedDependency[JobWriter],
    catalogue: NamedDependency[Catalogue],
    objects: NamedDependency[ObjectStores],
    settings: NamedDependency[GatewaySettings],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[Any]:
    try:
        form = await read_form(request.stream(), request.headers.get("content-type", ""),
                               file_limit=settings.max_upload_bytes, idle_timeout_s=settings.upload_idle_timeout_s)
    except UploadTooLarge as exc:
        raise Problem(413, "Upload too large", str(exc), headers={"Connection": "close"}) from exc
    except UploadStalled as exc:
        raise Problem(408, "Upload stalled", str(exc), headers={"Connection": "close"}) from exc
    stored: list[Upload] = []
    try:
        job_type = (form.first("type") or "").strip()
        submission = stamped(request.scope, submission_of(form, catalogue.types.get(job_type)))
        key = idempotency_key if idempotency_key is not None else (form.first("idempotency_key") or None)
        fill_files(submission, form, [new_job_id() for _ in form.files])  # (ids to be: the schema wants some)
        await writer.checks.check(submission, key)
        redirect = form.first("redirect")
        origins = frozenset(o.lower() for o in settings.cors_origins)
        if redirect:
            redirect_target(redirect, "x", origins)  # refused before anything is stored
        request_print = fingerprint(stamped(request.scope, submission_of(form, catalogue.types.get(job_type))))
        for _, spooled in form.files:
            stored.append(await spooled.store(objects, new_job_id()))
        fill_files(submission, form, [item.id for item in stored])
        try:
            event, fresh = await writer.submit(submission, key, request_print)
        except Held as held:  # its unique_key is held: that job answers (these files are not needed)
            event, fresh = JobCreated(ts=0.0, job_id=held.job_id, type=submission.type), False
    except BaseException:
        for item in stored:
            await delete_upload(objects, item.id)
        raise
    finally:
        form.close()
    if not fresh:  # the key's job exists (with its own files): these are not needed
        for item in stored:
            await delete_upload(objects, item.id)
        stored = []
    job_links = links(event.job_id)
    if wants_html(request.headers.get("accept", "")):
        target = redirect_target(redirect, event.job_id, origins) if redirect else f"/#/jobs/{event.job_id}"
        return Response(None, status_code=303, headers={"Location": target})
    accepted = FormAccepted(id=event.job_id, status="scheduled" if isinstance(event, JobScheduled) else "pending",
                            links=job_links, uploads=stored)
    return Response(accepted, status_code=202, headers={"Location": job_links["self"]})


@post("/api/uploads", status_code=201, summary="Upload a job input file", request_max_body_size=None,
      errors=(408, 413),
      description="The raw request body is the file (`Content-Type` is kept; `?filename=` names it); not a "
      "multipart form (415). It is streamed into the object store; reference the returned id in a job's params. "
      "400 for an empty body, 408 when the client stops sending for JOBLINE_UPLOAD_IDLE_TIMEOUT_S, 413 beyond "
      "JOBLINE_MAX_UPLOAD_BYTES; nothing is stored then.")
async def upload(request: Request[Any, Any, Any], objects: NamedDependency[ObjectStores],
                 settings: NamedDependency[GatewaySettings],
                 filename: FromQuery[str] = "upload") -> Response[Upload]:
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Upload too large", f"the upload is {declared} bytes; the limit is {limit}")
    upload_id = new_job_id()
    content_type = request.headers.get("content-type", "application/octet-stream")
    try:
        stored = await store_upload(objects, upload_id, request.stream(), limit=limit, filename=filename[:255],
                                    content_type=content_type, idle_timeout_s=settings.upload_idle_timeout_s)
    except UploadTooLarge as exc:
        raise Problem(413, "Upload too large", str(exc)) from exc
    except UploadEmpty as exc:
        raise Problem(400, "Empty upload", str(exc)) from exc
    except UploadStalled as exc:
        raise Problem(408, "Upload stalled", str(exc), headers={"Connection": "close"}) from exc
    return Response(stored, status_code=201, headers={"Location": f"/api/uploads/{upload_id}"})


@get("/api/uploads/{upload_id:str}", summary="An upload's size, checksum, name and type", errors=(404,))
async def upload_metadata(objects: NamedDependency[ObjectStores], upload_id: FromPath[str]) -> Upload:
    check_job_id(upload_id)
    stored = await upload_info(objects, upload_id)
    if stored is None:
        raise NotFound(f"there is no upload {upload_id!r}", title="Upload not found")
    return stored


@get("/api/jobs/{job_id:str}/artifacts/{name:str}", summary="Download a job's result file", errors=(404, 416, 503))
async def artifact(request: Request[Any, Any, Any], reader: NamedDependency[JobReader],
                   objects: NamedDependency[ObjectStores], job_id: FromPath[str],
                   name: FromPath[str]) -> Response[Any]:
    job = check_visible(request.scope, await reader.find(job_id))
    info = next((a for a in job.artifacts if a.name == name), None)
    opened = await open_artifact(objects, job_id, name) if info is not None else None
    if info is None or opened is None:
        raise NotFound(f"job {job_id} has no artifact {name!r}", title="Artifact not found")
    size, etag, chunks = opened
    kind = safe_type(info.content_type)
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    headers = {"Content-Disposition": f'{disposition}; filename="{ascii_name}"', "Cache-Control": "private, max-age=3600",
               "Accept-Ranges": "bytes", "ETag": etag}
    if_range = request.headers.get("if-range")
    try:  # (a byte range: video seeking, and HLS playlists that address parts of one file)
        # If-Range naming another version (or a date: no Last-Modified is given) asks for the whole
        # file (RFC 9110, 13.1.5).
        wanted = byte_range(request.headers.get("range"), size) if if_range in (None, etag) else None
    except RangeNotSatisfiable:  # (the chunks were not asked for: nothing to close)
        raise Problem(416, "Range not satisfiable", f"the artifact has {size} bytes",
                      headers={"Content-Range": f"bytes */{size}"}) from None
    if wanted is None:
        return Stream(chunks, media_type=kind, headers={**headers, "Content-Length": str(size)})
    first, last = wanted
    return Stream(sliced(chunks, first, last), media_type=kind, status_code=206, headers={
        **headers, "Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{size}"})


file_handlers = [submit_form, upload, upload_metadata, artifact]
