"""Concurrency slots: at most `concurrency` jobs of a type run at once on the whole cluster, and at
most `key_concurrency` per concurrency key.

A job of a limited type takes one of the type's slots before it starts (`<type>.all.<n>`), and a
job with a `concurrency_key` one of its key's (`<type>.<key hash>.<n>`): a KV entry created only if
absent (n < the limit), renewed with the attempt's lease, deleted at the attempt's end. The
bucket's TTL is the ack wait, so the slot of a processor that was `kill -9`ed comes back when its
job is redelivered, not never. A job that finds every slot taken is handed back for a moment (the
queue is not blocked: other keys' jobs go on) and says why.

The type's queues' `max_ack_pending` is the same limit: with one priority band in use, no more
jobs are handed out than there are slots, so the type's slots are never contended then; with
several bands (each a queue of its own), the slots are what keeps the limit exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import random

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.queues import key_slots_bucket_config
from jobline.runtime.buckets import key_value

from .settings import ProcessorSettings

MAX_PROBES = 16  # slots tried per take


class SlotLost(Exception):
    """Another job holds the slot now: this holder was away longer than the slot's TTL."""


FREE = b""  # a slot given back: its entry stays, empty (see KeySlots._take_one)


class HeldSlot:
    def __init__(self, kv: KeyValue, key: str, value: bytes, revision: int, freed: dict[str, int]):
        self._kv, self.key, self._value, self._revision = kv, key, value, revision
        self._freed = freed

    async def renew(self) -> None:
        try:
            self._revision = await self._kv.update(self.key, self._value, last=self._revision)
        except KeyWrongLastSequenceError as exc:
            raise SlotLost(f"slot {self.key} is held by another job now") from exc

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # (expired meanwhile, or NATS away: the TTL frees it)
            self._freed[self.key] = await self._kv.update(self.key, FREE, last=self._revision)


class KeySlots:
    def __init__(self, js: JetStreamContext, settings: ProcessorSettings):
        self._js = js
        self._settings = settings
        self._kv: KeyValue | None = None
        self._freed: dict[str, int] = {}  # slot key → revision of the free entry we last saw or wrote

    async def start(self) -> None:
        settings = self._settings
        self._kv = await key_value(self._js, key_slots_bucket_config(settings.names, settings.ack_wait_s,
                                                                     settings.retention.replicas))

    async def take(self, job_type: str, concurrency_key: str, limit: int, job_id: str) -> HeldSlot | None:
        """One of the key's `limit` slots, or None when all are taken."""
        return await self._take(f"{job_type}.{hashlib.sha256(concurrency_key.encode()).hexdigest()[:24]}", limit, job_id)

    async def take_type(self, job_type: str, limit: int, job_id: str) -> HeldSlot | None:
        """One of the type's `limit` slots (cluster-wide), or None when all are taken."""
        return await self._take(f"{job_type}.all", limit, job_id)  # (`all` is never a key hash)

    async def _take(self, prefix: str, limit: int, job_id: str) -> HeldSlot | None:
        assert self._kv is not None, "start() first"
        value = job_id.encode()
        # From a random slot on: with a high limit mostly free, the first try finds one (from slot 0
        # on, every start would try each taken slot first). A high limit is probed in part: a job
        # that finds none of its tries free waits a moment as if all were taken.
        first = random.randrange(limit)
        for i in range(min(limit, MAX_PROBES)):
            held = await self._take_one(f"{prefix}.{(first + i) % limit}", value)
            if held is not None:
                return held
        return None

    async def _take_one(self, key: str, value: bytes) -> HeldSlot | None:
        """A slot is free when its entry is absent (never taken, or expired: its holder died) or
        empty (given back). Given back is an update to empty, not a delete: re-creating a deleted
        key takes nats-py three round trips, taking a known free entry one."""
        assert self._kv is not None
        kv = self._kv
        known = self._freed.pop(key, None)
        try:
            if known is not None:
                return HeldSlot(kv, key, value, await kv.update(key, value, last=known), self._freed)
        except KeyWrongLastSequenceError:
            pass  # changed since: look again
        try:
            return HeldSlot(kv, key, value, await kv.update(key, value, last=0), self._freed)
        except KeyWrongLastSequenceError:
            pass  # it exists
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # a delete marker (an older release), or expired just now
            try:
                return HeldSlot(kv, key, value, await kv.create(key, value), self._freed)
            except KeyWrongLastSequenceError:
                return None
        if entry.value or entry.revision is None:
            return None  # held
        try:
            return HeldSlot(kv, key, value, await kv.update(key, value, last=entry.revision), self._freed)
        except KeyWrongLastSequenceError:
            return None  # taken meanwhile


class HeldSlots:
    """The slots one attempt holds (its type's, its key's): renewed and given back together."""

    def __init__(self) -> None:
        self.slots: list[HeldSlot] = []

    async def renew(self) -> None:
        for slot in self.slots:
            await slot.renew()

    async def release(self) -> None:
        for slot in self.slots:
            await slot.release()
        self.slots.clear()
