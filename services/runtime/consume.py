"""The one consume loop every pull consumer of Jobline runs, and the durable consumers under it.

Each user (the processor's work queue, the gateway's job feed and webhook dispatcher, the history
service's and the logsink's writers) gives a policy:

- `wanted()`: how many messages to hold outstanding (and, optionally, the low-water mark below
  which to top up): exact credit, so a user never holds more than it can take;
- `open()`: make sure the consumer exists and return its name — for a durable that outlives the
  user (`ensure_durable`), or one (re)created at the user's own position (`recreate_durable`, an
  ephemeral feed), called again after every break when `reopen` is set;
- `reopen`: what a break means. A *break* is a re-made connection (a restarted server may have lost
  the consumer, or messages on the wire), an error status from JetStream, or silence: no heartbeat
  for 2.5 intervals while requests are outstanding. Without `reopen` the loop forgets its requests
  and asks again (the durable still knows where it is); with it, it opens the consumer anew.

The loop asks (`CreditedPull.want`), then waits on one event — a message or a status arrived, the
user woke it (a slot freed), or the stop — under one timeout (the heartbeat interval), and checks
for a break. Failures while NATS or JetStream are away count as breaks, retried at a steady pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from .pull import CreditedPull
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)
RETRY_PACE_S = 0.5


# --- durable consumers -------------------------------------------------------------------------
def _normalised(config: ConsumerConfig, field: str) -> Any:
    value = getattr(config, field)
    if field == "filter_subjects":
        value = sorted(value or ([config.filter_subject] if config.filter_subject else []))
    elif field == "ack_wait" and value is not None:
        value = round(float(value), 3)
    return value.value if hasattr(value, "value") else value


async def ensure_durable(js: JetStreamContext, stream: str, wanted: ConsumerConfig,
                         compared: tuple[str, ...] = ("filter_subjects", "ack_wait", "max_deliver", "max_ack_pending")
                         ) -> ConsumerInfo:
    """The durable consumer `wanted` describes: created when missing, updated (with a warning
    naming each field) when the settings moved, left alone otherwise."""
    durable = wanted.durable_name
    assert durable, "a durable consumer needs a name"
    info: ConsumerInfo
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        info = await js.add_consumer(stream, wanted)
        log.info("created consumer %s on %s", durable, stream)
        return info
    drift = {field: (_normalised(info.config, field), _normalised(wanted, field)) for field in compared}
    drift = {field: values for field, values in drift.items() if values[1] is not None and values[0] != values[1]}
    if drift:
        log.warning("consumer %s differs from the settings (%s); updating it", durable,
                    ", ".join(f"{field}: {old!r} -> {new!r}" for field, (old, new) in drift.items()))
        info = await js.add_consumer(stream, wanted)
    return info


async def consumer_lag(js: JetStreamContext, stream: str, durable: str) -> int:
    """Messages the durable has yet to see or to have acked (a writer's lag, for /metrics)."""
    info = await js.consumer_info(stream, durable)
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def recreate_durable(js: JetStreamContext, stream: str, wanted: ConsumerConfig) -> ConsumerInfo:
    """The durable consumer, deleted and created again as `wanted` says (its start position
    included): for a user whose own store, not the consumer, knows how far it got."""
    assert wanted.durable_name
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, wanted.durable_name)
    info: ConsumerInfo = await js.add_consumer(stream, wanted)
    return info


# --- the loop ------------------------------------------------------------------------------------
class ConsumeLoop:
    def __init__(self, nc: Client, stream: str, on_message: Callable[[Msg], None], *,
                 open: Callable[[], Awaitable[str]], wanted: Callable[[], tuple[int, int | None]],
                 reopen: bool = False, heartbeat_s: float = 5.0, name: str = "consumer"):
        self._nc = nc
        self._stream = stream
        self._on_message = on_message
        self._open = open
        self._wanted = wanted
        self._reopen = reopen
        self.heartbeat_s = heartbeat_s
        self.name = name
        self.pull: CreditedPull | None = None
        self._woken = asyncio.Event()
        self._broken = False

    def wake(self) -> None:
        """Look at `wanted()` again now (a slot freed, a buffer drained)."""
        self._woken.set()

    def break_now(self) -> None:
        """Treat the consumer as broken: the user saw something wrong in what it delivered."""
        self._broken = True
        self._woken.set()

    async def start(self) -> CreditedPull:
        """Open the consumer and the pull (before `run`, so a user can fail fast at start)."""
        consumer = await self._open()
        self.pull = CreditedPull(self._nc, self._stream, consumer, self._on_message, heartbeat_s=self.heartbeat_s,
                                 changed=self._woken)
        await self.pull.start()
        return self.pull

    async def stop(self) -> None:
        if self.pull is not None:
            with contextlib.suppress(Exception):
                await self.pull.stop()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Until `stop` is set (or the task is cancelled); `start()` first."""
        stop = stop or asyncio.Event()
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._woken.set())
        reconnects = self._nc.stats["reconnects"]
        try:
            while not stop.is_set():
                try:
                    if self._broken:
                        self._broken = False
                        await self._recover()
                    pull = self.pull
                    assert pull is not None, "start() the loop before run()"
                    self._woken.clear()
                    if self._nc.is_connected:
                        credit, low_water = self._wanted()
                        await pull.want(credit, low_water=low_water)
                    with contextlib.suppress(TimeoutError):  # one event and one timer per turn
                        async with asyncio.timeout(self.heartbeat_s):
                            await self._woken.wait()
                    reconnected = self._nc.stats["reconnects"] != reconnects
                    reconnects = self._nc.stats["reconnects"]
                    silent = pull.credit and pull.silent_for() > self.heartbeat_s * 2.5
                    if reconnected or pull.error is not None or silent:
                        why = pull.error or ("reconnected" if reconnected else "no heartbeat")
                        log.warning("%s interrupted (%s); %s", self.name, why,
                                    "opening it again" if self._reopen else "asking again")
                        self._broken = True
                        if pull.error is not None:
                            await asyncio.wait({stopping}, timeout=RETRY_PACE_S)  # JetStream recovering
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS or JetStream away: try again at a steady pace
                    log.warning("%s: %s; retrying", self.name, exc or type(exc).__name__)
                    self._broken = True
                    await asyncio.wait({stopping}, timeout=RETRY_PACE_S)
        finally:
            stopping.cancel()

    async def _recover(self) -> None:
        pull = self.pull
        assert pull is not None
        if not self._reopen:
            pull.reset()  # the durable knows where it is: forget our requests and ask again
            return
        await pull.stop()
        consumer = await self._open()
        self.pull = CreditedPull(self._nc, self._stream, consumer, self._on_message, heartbeat_s=self.heartbeat_s,
                                 changed=self._woken)
        await self.pull.start()


def shared_durable(durable: str, description: str, ack_wait_s: float, **filters: Any) -> ConsumerConfig:
    """The durable every replica of a role shares (the conductors' runners): each message to one of
    them, redelivered until acked, however often. `filters`: `filter_subject=` or `filter_subjects=`."""
    return ConsumerConfig(durable_name=durable, description=description, deliver_policy=DeliverPolicy.ALL,
                          ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait_s, max_deliver=-1, **filters)


class DurableTasks:
    """A durable consumer whose every message is handled in a task of its own, at most `limit` at
    once (the conductors' webhook dispatcher and schedule runner): one consume loop hands them out,
    a break asks again, and tasks still running at `stop` are cancelled (unacked, their messages
    are redelivered, to another replica)."""

    def __init__(self, nc: Client, js: JetStreamContext, stream: str, config: ConsumerConfig,
                 handle: Callable[[Msg], Coroutine[Any, Any, None]], *, limit: int, name: str):
        assert config.durable_name, "a durable consumer needs a name"
        self._js, self._stream, self._config, self._handle = js, stream, config, handle
        self._inflight: set[asyncio.Task[None]] = set()
        self._consume = ConsumeLoop(nc, stream, self._on_message, open=self._open,
                                    wanted=lambda: (max(limit - len(self._inflight), 0), None), name=name)
        self._task: asyncio.Task[None] | None = None
        self.name = name

    async def _open(self) -> str:
        await ensure_durable(self._js, self._stream, self._config)
        return self._config.durable_name  # type: ignore[return-value]

    async def start(self) -> None:
        await self._consume.start()
        self._task = asyncio.create_task(self._consume.run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._consume.stop()
        for task in list(self._inflight):
            task.cancel()

    def _on_message(self, msg: Msg) -> None:
        task: asyncio.Task[None] = asyncio.create_task(self._handle(msg))
        self._inflight.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._inflight.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("%s: a message's task failed; it will be redelivered", self.name,
                          exc_info=finished.exception())
            self._consume.wake()  # room for one more

        task.add_done_callback(done)
