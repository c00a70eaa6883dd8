"""Per-key concurrency: at most `key_concurrency` jobs of a type run at once per concurrency key.

A job with a `concurrency_key` takes one of its key's slots before it starts: a KV entry
`<type>.<key hash>.<n>` created only if absent (n < the limit), renewed with the attempt's lease,
deleted at the attempt's end. The bucket's TTL is the ack wait, so the slot of a processor that was
`kill -9`ed comes back when its job is redelivered, not never. A job that finds every slot of its key
taken is handed back for a moment (the queue is not blocked: other keys' jobs go on) and says why.
"""

from __future__ import annotations

import contextlib
import hashlib

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.queues import key_slots_bucket_config
from jobline.runtime.buckets import key_value

from .settings import ProcessorSettings


class SlotLost(Exception):
    """Another job holds the slot now: this holder was away longer than the slot's TTL."""


class HeldSlot:
    def __init__(self, kv: KeyValue, key: str, value: bytes, revision: int):
        self._kv, self.key, self._value, self._revision = kv, key, value, revision

    async def renew(self) -> None:
        try:
            self._revision = await self._kv.update(self.key, self._value, last=self._revision)
        except KeyWrongLastSequenceError as exc:
            raise SlotLost(f"slot {self.key} is held by another job now") from exc

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # (expired meanwhile, or NATS away: the TTL frees it)
            await self._kv.delete(self.key, last=self._revision)


class KeySlots:
    def __init__(self, js: JetStreamContext, settings: ProcessorSettings):
        self._js = js
        self._settings = settings
        self._kv: KeyValue | None = None

    async def start(self) -> None:
        settings = self._settings
        self._kv = await key_value(self._js, key_slots_bucket_config(settings.names, settings.ack_wait_s,
                                                                     settings.retention.replicas))

    async def take(self, job_type: str, concurrency_key: str, limit: int, job_id: str) -> HeldSlot | None:
        """One of the key's `limit` slots, or None when all are taken."""
        assert self._kv is not None, "start() first"
        prefix = f"{job_type}.{hashlib.sha256(concurrency_key.encode()).hexdigest()[:24]}"
        value = job_id.encode()
        for n in range(limit):
            key = f"{prefix}.{n}"
            try:
                revision = await self._kv.create(key, value)
            except KeyWrongLastSequenceError:
                continue
            return HeldSlot(self._kv, key, value, revision)
        return None
