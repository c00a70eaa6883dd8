"""JetStream publishing that survives a leader election or a reconnect without duplicating.

nats-py does not retry a publish by itself. Every retry here carries the same `Nats-Msg-Id`, so
the stream's duplicate window turns a retry of a message that was in fact stored into a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import random

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, ServiceUnavailableError

log = logging.getLogger(__name__)

# nats-py turns "no responders" (no stream leader during an election) into NoStreamResponseError.
_RETRYABLE = (nats.errors.TimeoutError, nats.errors.NoRespondersError, NoStreamResponseError,
              nats.errors.ConnectionReconnectingError, ServiceUnavailableError)


async def publish_reliably(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    msg_id: str,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
    give_up_after: float = 60.0,
) -> PubAck:
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
            return await js.publish(subject, payload, timeout=timeout, headers=all_headers)
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
