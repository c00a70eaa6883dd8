"""A KV bucket mirrored into a dict, kept current by a watch (the job types, the queue controls)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Generic, TypeVar, cast

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from .buckets import key_value
from .stream_setup import when_jetstream_ready
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")


class KvMirror(Generic[T]):
    def __init__(self, value_type: type[T]) -> None:
        self.values: dict[str, T] = {}
        self.kv: KeyValue | None = None
        self._decoder = msgspec.json.Decoder(value_type)
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self, js: JetStreamContext, config: KeyValueConfig) -> None:
        """Open (or create) the bucket and return once its current values are here."""
        self.kv = await key_value(js, config)
        self._watcher = await when_jetstream_ready(self.kv.watchall, f"the {config.bucket} watch")
        initial = asyncio.Event()
        self._task = asyncio.create_task(self._follow(self._watcher, initial))
        await initial.wait()

    async def _follow(self, watcher: KeyValue.KeyWatcher, initial: asyncio.Event) -> None:
        async for entry in watcher:
            if entry is None:  # the watcher's marker: initial values delivered
                initial.set()
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.values.pop(entry.key, None)
            else:
                try:
                    self.values[entry.key] = self._decoder.decode(entry.value)
                except msgspec.DecodeError as exc:
                    log.warning("ignoring bad entry %s: %s", entry.key, exc)
            initial.set()

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await cast(Any, self._watcher).stop()  # (untyped in nats-py)
        if self._task is not None:  # (its error: a watch the connection ended)
            await cancel_and_wait(self._task)
