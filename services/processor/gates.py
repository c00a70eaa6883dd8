"""What a job must pass through to start, besides a free slot here: its type's cluster-wide
concurrency slot and its key's (KV `key_slots`), and a rate-limited type's start token. A job
that finds no free slot is handed back for a moment, and says so once per attempt."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, JobWaiting, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.publishing import publish_reliably

from .key_slots import HeldSlots, KeySlots
from .queues import Queues

SLOT_RETRY_S = 1.0  # a job whose type or key has no free slot is tried again after about this long
WAITS_KEPT = 10_000


class NoFreeSlot(Exception):
    """Every slot of the job's type, or of its concurrency key, is taken (the message says which)."""


class Gates:
    def __init__(self, js: JetStreamContext, names: Names, controls: Queues, key_slots: KeySlots, ack_wait_s: float):
        self._js = js
        self._names = names
        self._controls = controls
        self._key_slots = key_slots
        self._ack_wait_s = ack_wait_s
        self._waits_said: OrderedDict[str, None] = OrderedDict()  # "<job>:<attempt>" that said why it waits

    async def take_slots(self, created: JobCreated) -> HeldSlots:
        """The slots the job needs to start: its type's when the type has a concurrency limit, its
        key's (its concurrency key, else its owner) when it has one and the type a per-key limit.
        NoFreeSlot (holding none) when one is taken."""
        controls = self._controls.controls(created.type)
        held = HeldSlots()
        if controls.concurrency is not None:
            slot = await self._key_slots.take_type(created.type, controls.concurrency, created.job_id)
            if slot is None:
                raise NoFreeSlot(f"waiting for one of the {controls.concurrency} slot(s) of {created.type}")
            held.slots.append(slot)
        # A job without a concurrency key counts against its owner's: a per-key limit is then a
        # per-owner limit, so one owner's backlog holds at most that many slots of the type.
        key = created.concurrency_key if created.concurrency_key is not None else created.owner
        if controls.key_concurrency is not None and key is not None:
            slot = await self._key_slots.take(created.type, key, controls.key_concurrency, created.job_id)
            if slot is None:
                await held.release()
                raise NoFreeSlot(f"waiting for a concurrency slot: {key}")
            held.slots.append(slot)
        return held

    async def wait_for_slot(self, msg: Msg, created: JobCreated, attempt: int, reason: str) -> None:
        """Hand the job back for a moment (other keys' jobs go on meanwhile) and say why, once per attempt."""
        said = f"{created.job_id}:{attempt}"
        if said not in self._waits_said:  # (it comes back every second or so: say it once)
            self._waits_said[said] = None
            while len(self._waits_said) > WAITS_KEPT:
                self._waits_said.popitem(last=False)
            waiting = JobWaiting(ts=time.time(), job_id=created.job_id, reason=reason)
            with contextlib.suppress(Exception):  # (what it says is worth less than handing the job back)
                await publish_reliably(self._js, subject_of(self._names, waiting), encoder.encode(waiting),
                                       msg_id=f"{said}:waiting", give_up_after=5.0)
        await msg.nak(delay=SLOT_RETRY_S * random.uniform(0.5, 1.5))

    async def take_token(self, msg: Msg, job_type: str) -> None:
        """A rate-limited type's start token; the delivery is kept ours while it waits."""
        if self._controls.controls(job_type).rate_max is None:
            return
        waiting = asyncio.create_task(self._controls.take_token(job_type))
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=self._ack_wait_s / 3)
                if not waiting.done():
                    await msg.in_progress()
            waiting.result()
        finally:
            waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # (retrieved: raised above, or moot when this attempt was cancelled)
