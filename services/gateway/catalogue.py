"""The job types processors serve, watched live from the types KV bucket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from jobline.contract.events import JobTypeInfo
from jobline.contract.names import Names
from jobline.contract.streams import types_bucket_config
from jobline.runtime.buckets import key_value
from jobline.runtime.stream_setup import when_jetstream_ready

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(JobTypeInfo)


class Catalogue:
    def __init__(self) -> None:
        self.types: dict[str, JobTypeInfo] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self, js: JetStreamContext, names: Names, replicas: int) -> None:
        kv = await key_value(js, types_bucket_config(names, replicas))
        self._watcher = await when_jetstream_ready(kv.watchall, "the job types watch")
        initial = asyncio.Event()
        self._task = asyncio.create_task(self._follow(self._watcher, initial))
        await initial.wait()

    async def _follow(self, watcher: KeyValue.KeyWatcher, initial: asyncio.Event) -> None:
        async for entry in watcher:
            if entry is None:  # the watcher's marker: initial values delivered
                initial.set()
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.types.pop(entry.key, None)
            else:
                try:
                    self.types[entry.key] = _decoder.decode(entry.value)
                except msgspec.DecodeError as exc:
                    log.warning("ignoring bad type entry %s: %s", entry.key, exc)
            initial.set()

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await cast(Any, self._watcher).stop()  # (untyped in nats-py)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
