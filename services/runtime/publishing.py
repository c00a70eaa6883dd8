"""JetStream publishing that survives a leader election or a reconnect without duplicating.

nats-py does not retry a publish by itself. Every retry here carries the same `Nats-Msg-Id`, so
the stream's duplicate window turns a retry of a message that was in fact stored into a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError, ServiceUnavailableError

from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR

log = logging.getLogger(__name__)

# nats-py turns "no responders" (no stream leader during an election) into NoStreamResponseError.
_RETRYABLE = (nats.errors.TimeoutError, nats.errors.NoRespondersError, NoStreamResponseError,
              nats.errors.ConnectionReconnectingError, ServiceUnavailableError)


class StreamAck(msgspec.Struct, frozen=True):
    """The stream's answer to a publish: where the message is stored, or why it was refused."""
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


# nats-py's own `js.publish` reads the ack with `json.loads` and a dataclass built by field
# introspection, ~5 µs of the ~20 µs a publish costs; every job's created, started and end
# events are acked publishes.
ack_decoder = msgspec.json.Decoder(StreamAck)


async def publish_acked(js: JetStreamContext, subject: str, payload: bytes, headers: dict[str, str],
                        timeout: float) -> StreamAck:
    """`js.publish` with the ack decoded by msgspec; raises what `js.publish` raises."""
    try:
        # The context's own connection (nats-py keeps it as `_nc`): callers hold the context, as
        # for every other JetStream call, and `tests/test_streams.py` checks this against a server.
        msg = await js._nc.request(subject, payload, timeout=timeout, headers=headers)
    except nats.errors.NoRespondersError:
        raise NoStreamResponseError from None
    ack = ack_decoder.decode(msg.data)
    if ack.error is not None:
        APIError.from_error(ack.error)  # raises the subclass for the code (503: ServiceUnavailableError, …)
    return ack


async def publish_reliably(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    msg_id: str,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
    give_up_after: float = 60.0,
) -> StreamAck:
    """Publish and wait for the stream's ack, retrying transient failures with bounded backoff.

    Raises APIError at once for a refusal (e.g. a failed expected-sequence check): retrying cannot
    change the answer.
    """
    all_headers = {"Nats-Msg-Id": msg_id, **(headers or {})}
    delay = 0.05
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    while True:
        try:
            return await publish_acked(js, subject, payload, all_headers, timeout)
        except APIError as exc:
            if isinstance(exc, ServiceUnavailableError) and loop.time() < deadline:
                pass
            else:
                raise
        except _RETRYABLE as exc:
            if loop.time() >= deadline:
                raise
            log.warning("publish to %s failed (%s); retrying in %.2fs", subject, type(exc).__name__, delay)
        await asyncio.sleep(delay * (0.5 + random.random()))  # backoff with jitter, not a poll
        delay = min(delay * 2, 2.0)


async def publish_if_last(js: JetStreamContext, subject: str, payload: bytes, *, msg_id: str,
                          headers: dict[str, str], give_up_after: float = 60.0) -> bool:
    """`publish_reliably` with expected-last-sequence headers (contract/publishing.expect_last):
    False when the stream refused them — written before (by an earlier try, another replica) or
    superseded — which the callers take as done."""
    try:
        await publish_reliably(js, subject, payload, msg_id=msg_id, headers=headers, give_up_after=give_up_after)
    except APIError as exc:
        if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
            raise
        return False
    return True
