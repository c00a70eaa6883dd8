"""Files through the client: uploads (a job's inputs, streamed with progress) and artifacts (its
results, downloaded to a file), each retried as far as that is safe."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import httpx
import msgspec

from .errors import Unreachable
from .transport import CUT, NOT_SENT, Transport, problem_of

UPLOAD_CHUNK = 256 * 1024


class Upload(msgspec.Struct, frozen=True):
    """A stored upload (`POST /api/uploads`): put its id in a job's params."""

    id: str
    size: int
    sha256: str
    filename: str
    content_type: str


_upload_decoder = msgspec.json.Decoder(Upload)


class Files(Transport):
    async def download(self, job_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Save an artifact to `dest` (a file, or a folder to put it in under its own name)."""
        target = Path(dest)
        if target.is_dir():  # noqa: ASYNC240 - one local stat, not worth a thread
            target = target / name
        partial = target.with_name(target.name + ".part")
        failures = 0
        while True:
            try:
                async with self._http.stream("GET", f"/api/jobs/{job_id}/artifacts/{name}",
                                             timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise problem_of(response)
                    with partial.open("wb") as out:
                        async for chunk in response.aiter_bytes(UPLOAD_CHUNK):
                            out.write(chunk)
                partial.replace(target)
                return target
            except (*NOT_SENT, *CUT) as exc:
                failures += 1
                if failures > self.settings.retries:
                    raise Unreachable(f"artifact {name} of {job_id}: {exc}") from exc
                await asyncio.sleep(self._delay(failures))

    async def upload(self, file: str | os.PathLike[str] | IO[bytes], *, filename: str | None = None,
                     content_type: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None) -> Upload:
        """Stream a file into the object store; `progress(sent, total)` is called as it goes.
        Put the returned `id` in a job's params."""
        import mimetypes

        if isinstance(file, (str, os.PathLike)):
            path = Path(file)
            with path.open("rb") as opened:  # noqa: ASYNC230 - opening is instant; reads are chunked
                return await self.upload(opened, filename=filename or path.name, content_type=content_type,
                                         progress=progress)
        name = filename or Path(getattr(file, "name", "upload") or "upload").name
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        total: int | None = None
        start = 0
        try:
            start = file.tell()
            total = os.fstat(file.fileno()).st_size - start
        except (OSError, AttributeError, ValueError):
            pass

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while chunk := file.read(UPLOAD_CHUNK):
                sent += len(chunk)
                yield chunk
                if progress is not None:
                    progress(sent, total)

        headers = {"Content-Type": kind}
        if total is not None:
            headers["Content-Length"] = str(total)
        failures = 0
        while True:
            try:
                response = await self._http.post("/api/uploads", params={"filename": name}, content=body(),
                                                 headers=headers, timeout=httpx.Timeout(self.settings.timeout_s, read=None))
            except NOT_SENT as exc:
                failures += 1
                if failures > self.settings.retries:
                    raise Unreachable(f"upload {name}: {exc}") from exc
                file.seek(start)
                await asyncio.sleep(self._delay(failures))
                continue
            if response.status_code >= 400:
                raise problem_of(response)
            return _upload_decoder.decode(response.content)
