"""Uploads into and artifacts out of the JetStream Object Store, streamed in chunks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NamedTuple, cast

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, ObjectStore

from jobline.contract.names import Names
from jobline.runtime.buckets import object_store

# Served as-is; anything else is sent as application/octet-stream (with nosniff) so an upload can
# never be turned into a page of this origin.
SAFE_TYPES = {
    "video/mp4", "video/webm", "image/jpeg", "image/png", "image/webp", "image/gif", "audio/mpeg",
    "application/json", "text/plain", "text/csv", "application/pdf", "application/vnd.apple.mpegurl",
}
INLINE_TYPES = {"video/mp4", "video/webm", "image/jpeg", "image/png", "image/webp", "image/gif", "audio/mpeg",
                "application/vnd.apple.mpegurl"}
SPOOL_IN_MEMORY = 1 << 20


class UploadTooLarge(Exception):
    pass


class UploadEmpty(Exception):
    pass


class UploadStalled(Exception):
    pass


class Upload(msgspec.Struct):
    id: str
    size: int
    sha256: str
    filename: str
    content_type: str


@dataclass
class ObjectStores:
    uploads: ObjectStore
    artifacts: ObjectStore
    js: JetStreamContext

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, replicas: int) -> ObjectStores:
        return cls(await object_store(js, names.uploads_bucket, replicas),
                   await object_store(js, names.artifacts_bucket, replicas), js)


def safe_type(content_type: str | None) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    if base == "text/plain":
        return "text/plain; charset=utf-8"
    return base if base in SAFE_TYPES else "application/octet-stream"


async def within(body: AsyncIterator[bytes], idle_s: float) -> AsyncIterator[bytes]:
    """The body's chunks, each within `idle_s` of the last: a client that stops sending does not
    hold the connection (and a spool file) for ever."""
    chunks = aiter(body)
    while True:
        try:
            async with asyncio.timeout(idle_s):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadStalled(f"nothing received for {idle_s:g}s") from None
        yield chunk


class SpooledUpload:
    """A file being received: spooled to a temporary file (never all of it in memory), its size
    held to the limit and its checksum computed as it arrives; stored only when `store` is called."""

    def __init__(self, filename: str, content_type: str, limit: int):
        self.filename = filename
        self.content_type = content_type
        self.limit = limit
        self.size = 0
        self._digest = hashlib.sha256()
        # Open for as long as the form is (close() ends it): not a `with` block.
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(f"the upload exceeds {self.limit} bytes")
        self._digest.update(chunk)
        self._spool.write(chunk)

    async def store(self, stores: ObjectStores, upload_id: str) -> Upload:
        """Put it in the object store; a failed put leaves no partial object."""
        self._spool.seek(0)
        meta = ObjectMeta(name=upload_id, description=json.dumps({"filename": self.filename,
                                                                  "content_type": self.content_type}))
        try:
            # (nats-py reads it with read(): a spooled file is as good as the BufferedIOBase it names)
            await stores.uploads.put(upload_id, cast(io.BufferedIOBase, self._spool), meta=meta)
        except BaseException:
            await delete_upload(stores, upload_id)
            raise
        return Upload(id=upload_id, size=self.size, sha256=self._digest.hexdigest(), filename=self.filename,
                      content_type=self.content_type)

    def close(self) -> None:
        self._spool.close()


async def delete_upload(stores: ObjectStores, upload_id: str) -> None:
    with contextlib.suppress(Exception):  # nothing stored, nothing to remove
        await stores.uploads.delete(upload_id)


async def store_upload(stores: ObjectStores, upload_id: str, body: AsyncIterator[bytes], *, limit: int,
                       filename: str, content_type: str, idle_timeout_s: float = 30.0) -> Upload:
    """The body as one upload, stored once it has all arrived within the limit."""
    spooled = SpooledUpload(filename, content_type, limit)
    try:
        async for chunk in within(body, idle_timeout_s):
            spooled.write(chunk)
        if spooled.size == 0:
            raise UploadEmpty("the upload is empty: send the file as the request body")
        return await spooled.store(stores, upload_id)
    finally:
        spooled.close()


async def upload_info(stores: ObjectStores, upload_id: str) -> Upload | None:
    """What `store_upload` answered, read back from the object store (None: no such upload)."""
    try:
        info = await stores.uploads.get_info(upload_id)
    except (ObjectNotFoundError, NotFoundError):
        return None
    if info.deleted:
        return None
    described = json.loads(info.description or "{}") if (info.description or "").startswith("{") else {}
    digest = (info.digest or "").removeprefix("SHA-256=")
    sha256 = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex() if digest else ""
    return Upload(id=upload_id, size=int(info.size or 0), sha256=sha256, filename=described.get("filename", upload_id),
                  content_type=described.get("content_type", "application/octet-stream"))


class RangeNotSatisfiable(ValueError):
    pass


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last) a `Range: bytes=…` header asks for; None for the whole
    (no header, or one this does not serve: several ranges, other units). A range that starts past
    the end raises RangeNotSatisfiable (416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, _, last_text = header[6:].strip().partition("-")
    try:
        if not first_text:  # the last N bytes
            count = int(last_text)
            if count <= 0:
                raise RangeNotSatisfiable(header)
            return max(size - count, 0), size - 1
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or first > last or first < 0:
        raise RangeNotSatisfiable(header)
    return first, last


async def sliced(chunks: AsyncIterator[bytes], first: int, last: int) -> AsyncIterator[bytes]:
    """Bytes `first`..`last` (inclusive) of a stream of chunks."""
    offset = 0
    async for chunk in chunks:
        start, end = offset, offset + len(chunk)
        offset = end
        if end <= first:
            continue
        if start > last:
            break
        yield chunk[max(first - start, 0):min(last + 1 - start, len(chunk))]


class OpenedArtifact(NamedTuple):
    size: int
    etag: str  # a strong validator: the stored object's own id, new whenever it is stored again
    chunks: AsyncIterator[bytes]


async def open_artifact(stores: ObjectStores, job_id: str, name: str) -> OpenedArtifact | None:
    """A stored artifact's size, ETag and chunks (straight from the stream), or None."""
    try:
        info = await stores.artifacts.get_info(f"{job_id}/{name}")
    except (ObjectNotFoundError, NotFoundError):
        return None
    if info.deleted:
        return None
    subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=info.bucket, obj=info.nuid)
    total_chunks = int(info.chunks or 0)

    async def chunks() -> AsyncIterator[bytes]:
        if total_chunks == 0:
            return
        sub = await stores.js.subscribe(subject, ordered_consumer=True)
        try:
            for _ in range(total_chunks):
                msg = await sub.next_msg(timeout=10)
                yield msg.data
        finally:
            await sub.unsubscribe()

    return OpenedArtifact(int(info.size or 0), f'"{info.nuid}"', chunks())
