"""Typed records in a KV bucket, changed by compare-and-set: one read, one retry policy and one
give-up error for every record several processes change at once (flows, schedules, queue
controls, batches)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec
from nats.js.errors import InvalidKeyError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

T = TypeVar("T")
TRIES = 50  # compare-and-set attempts before giving up (each a fresh read: others keep writing)


class RecordKeptChanging(Exception):
    """Other writers changed the record every time it was read: nothing was written."""

    def __init__(self, bucket: str, key: str):
        super().__init__(f"{bucket} {key!r} kept changing under this change; try again")
        self.key = key


class KvRecords(Generic[T]):
    def __init__(self, kv: KeyValue, value_type: type[T], *, tries: int = TRIES):
        self.kv = kv
        self._decoder = msgspec.json.Decoder(value_type)
        self._encoder = msgspec.json.Encoder()
        self._tries = tries

    async def get(self, key: str) -> tuple[T, int] | None:
        """The record and its revision; None when there is none (or the key cannot be one)."""
        try:
            entry = await self.kv.get(key)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        if not entry.value:
            return None
        return self._decoder.decode(entry.value), int(entry.revision or 0)

    async def value(self, key: str) -> T | None:
        found = await self.get(key)
        return None if found is None else found[0]

    async def create(self, key: str, record: T) -> bool:
        """Store a new record; False when one exists already."""
        try:
            await self.kv.create(key, self._encoder.encode(record))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def delete(self, key: str) -> None:
        await self.kv.delete(key)

    async def update(self, key: str, change: Callable[[T | None], T | Awaitable[T | None] | None]) -> T | None:
        """Read the record (None: there is none), `change` it (a new value, or None: write nothing),
        write it only if nobody wrote it since; on a conflict read again and change again. What
        `change` does besides must be harmless when repeated. RecordKeptChanging after TRIES."""
        for _ in range(self._tries):
            found = await self.get(key)
            current, revision = found if found is not None else (None, 0)
            changed = change(current)
            if inspect.isawaitable(changed):
                changed = await changed
            if changed is None:
                return None
            try:
                if revision:
                    await self.kv.update(key, self._encoder.encode(changed), last=revision)
                else:
                    await self.kv.create(key, self._encoder.encode(changed))
            except KeyWrongLastSequenceError:
                continue
            return changed
        raise RecordKeptChanging(self.kv._name, key)  # (nats-py keeps the bucket's name there)
