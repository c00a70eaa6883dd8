"""The job types processors serve, watched live from the types KV bucket."""

from __future__ import annotations

from nats.js import JetStreamContext

from jobline.contract.events import JobTypeInfo
from jobline.contract.names import Names
from jobline.contract.streams import types_bucket_config
from jobline.runtime.kv_mirror import KvMirror


class Catalogue:
    def __init__(self) -> None:
        self._mirror = KvMirror(JobTypeInfo)
        self.types: dict[str, JobTypeInfo] = self._mirror.values

    async def start(self, js: JetStreamContext, names: Names, replicas: int) -> None:
        await self._mirror.start(js, types_bucket_config(names, replicas))

    async def stop(self) -> None:
        await self._mirror.stop()
