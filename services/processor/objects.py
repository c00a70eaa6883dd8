"""The Object Store buckets a processor reads uploads from and writes artifacts to."""

from __future__ import annotations

import base64
import contextlib
import logging
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from jobline.contract.names import Names
from jobline.runtime.buckets import object_store

log = logging.getLogger(__name__)


class Objects:
    """Uploads in, artifacts out; opened once per processor."""

    def __init__(self, uploads: ObjectStore, artifacts: ObjectStore):
        self.uploads = uploads
        self.artifacts = artifacts

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, replicas: int) -> Objects:
        return cls(await object_store(js, names.uploads_bucket, replicas),
                   await object_store(js, names.artifacts_bucket, replicas))

    async def fetch_upload(self, upload_id: str, dest: Path) -> Path:
        """Stream an upload to a file (never the whole object in memory)."""
        with dest.open("wb") as out:
            await self.uploads.get(upload_id, writeinto=out)
        return dest

    async def store_artifact(self, key: str, path: Path) -> tuple[int, str]:
        """Returns (size, sha256 hex). A failed put leaves no partial object behind."""
        try:
            with path.open("rb") as data:
                info = await self.artifacts.put(key, data)
        except BaseException:
            with contextlib.suppress(Exception):  # nothing was stored, or the store is gone: nothing to clean
                await self.artifacts.delete(key)
            raise
        digest = (info.digest or "").removeprefix("SHA-256=")
        sha256 = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex() if digest else ""
        return int(info.size or 0), sha256
