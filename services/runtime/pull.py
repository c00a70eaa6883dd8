"""A pull consumer with exact credit: never more messages in hand than asked for.

nats-py's `fetch()` drains its whole pending queue, so a pull request still open from an earlier
fetch can hand a processor more jobs than it has free slots; and its pull subscriptions are known
to go silent after a server restart (nats.py#504). This asks the server directly
(`$JS.API.CONSUMER.MSG.NEXT`), counts what is outstanding, and watches the idle heartbeats the
server sends on each open request: silence means the requests are gone, so it asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)


class CreditedPull:
    def __init__(self, nc: Client, stream: str, durable: str, on_message: Callable[[Msg], None], *,
                 expires_s: float = 30.0, heartbeat_s: float = 5.0, api_prefix: str = "$JS.API",
                 changed: asyncio.Event | None = None):
        self._nc = nc
        self._subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._on_message = on_message
        self._expires_ns = int(expires_s * 1e9)
        self._heartbeat_ns = int(heartbeat_s * 1e9)
        self.heartbeat_s = heartbeat_s
        self._sub: Subscription | None = None
        self._inbox = ""
        self.credit = 0  # messages asked for and neither delivered nor given up by the server
        self.error: str | None = None  # set by an abnormal answer (no consumer, no JetStream, …)
        self.last_heard = time.monotonic()
        # Set whenever credit drops (a message or a status arrived); may be shared with the user's
        # own wake-ups, so its loop waits on one event.
        self.changed = changed or asyncio.Event()

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def want(self, n: int, low_water: int | None = None) -> None:
        """Top the outstanding credit up to `n` messages (only once it fell to `low_water`, so a
        trickle of messages does not cost a request each)."""
        if low_water is not None and self.credit > low_water:
            return
        extra = n - self.credit
        if extra <= 0:
            return
        self.credit += extra
        try:
            await self._nc.publish(self._subject, self._request(extra), reply=self._inbox)
        except Exception:
            self.credit -= extra
            raise

    async def ack_and_ask(self, msg: Msg, n: int) -> None:
        """Acknowledge a delivery and ask for `n` more messages in the same message (JetStream's
        `+NXT`, "ack next"): the request is the same as `want`'s, answered on the same inbox."""
        self.credit += n
        try:
            await self._nc.publish(msg.reply, b"+NXT " + self._request(n), reply=self._inbox)
        except Exception:
            self.credit -= n
            raise

    def _request(self, n: int) -> bytes:
        return json.dumps({"batch": n, "expires": self._expires_ns, "idle_heartbeat": self._heartbeat_ns}).encode()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_heard

    def reset(self) -> None:
        """Forget requests the server no longer holds (e.g. it restarted), and the error that ended them."""
        self.credit = 0
        self.error = None
        self.last_heard = time.monotonic()

    async def _receive(self, msg: Msg) -> None:
        self.last_heard = time.monotonic()
        status = msg.headers.get("Status") if msg.headers else None
        if not status:
            self.credit = max(self.credit - 1, 0)
            self.changed.set()
            self._on_message(msg)
            return
        if status == "100":  # idle heartbeat: our requests are alive
            return
        # 404 no messages / 408 request expired / 409 leadership change, max waiting, …: the
        # request is over; the server says how much of it was left unfilled.
        pending = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
        if pending is not None and pending.isdigit():
            self.credit = max(self.credit - int(pending), 0)
        else:
            self.credit = 0
        if status not in ("404", "408"):
            description = msg.headers.get("Description", "") if msg.headers else ""
            self.error = f"{status} {description}".strip()
            log.info("pull request ended: %s", self.error)
        self.changed.set()


class PullNow:
    """Ask a consumer for what it holds now (a no-wait pull: the server answers at once, with up to
    `n` messages or a "no messages" status) — for picking among several queues without waiting on
    any. Each request has an inbox of its own (a delivery's subject is the message's, not the
    inbox: only the subscription tells requests apart); a delivery that comes after its request
    gave up is handed back (nak)."""

    def __init__(self, nc: Client, stream: str, api_prefix: str = "$JS.API", timeout_s: float = 2.0):
        self._nc = nc
        self._prefix = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}."
        self._timeout_s = timeout_s

    async def pull(self, durable: str, n: int) -> list[Msg]:
        """Up to `n` messages the consumer can deliver now ([] when it has none, is paused or is
        away)."""
        got: list[Msg] = []
        done = asyncio.Event()
        gave_up = False

        async def receive(msg: Msg) -> None:
            status = msg.headers.get("Status") if msg.headers else None
            if status:
                if status != "100":
                    done.set()  # 404 none / 408 / 409: the request is over
                return
            if gave_up:
                with contextlib.suppress(Exception):
                    await msg.nak()  # someone else may take it
                return
            got.append(msg)
            if len(got) >= n:
                done.set()

        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=receive)
        try:
            await self._nc.publish(self._prefix + durable, json.dumps({"batch": n, "no_wait": True}).encode(),
                                   reply=inbox)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout_s):
                    await done.wait()
            gave_up = True
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return got
