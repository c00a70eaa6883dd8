"""All or nothing: many messages into one stream as a JetStream atomic batch (ADR-50).

Each message carries `Nats-Batch-Id` and its `Nats-Batch-Sequence`; the last one also
`Nats-Batch-Commit: 1` and a reply subject. The server holds the batch until the commit, checks
every message's expected-sequence headers against the stream as it was before the batch, and
then stores all of it or none: a batch whose sender dies half-way is abandoned (after 10 s), one
whose check fails is refused whole. The stream needs `allow_atomic`; a batch may hold up to the
server's `jetstream.limits.batch.max_msgs` messages (1,000 by default: embedded_nats.py raises it).

`Nats-Msg-Id` is not allowed inside a batch (nats-server 2.12): a retried batch is made harmless by
the expected-sequence headers of its messages instead — the retry of a stored batch is refused.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from typing import NamedTuple

import nats.errors
from nats.aio.client import Client
from nats.js.errors import APIError

from .publishing import StreamAck, ack_decoder

log = logging.getLogger(__name__)

# JetStream's error codes for a batch refused as a whole (ADR-50).
BATCH_TOO_LARGE_ERR = 10199  # more messages than the server's max_msgs
BATCH_INCOMPLETE_ERR = 10176  # a message went missing (e.g. a reconnect in the middle): send it again
_TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionReconnectingError)


class Message(NamedTuple):
    subject: str
    payload: bytes
    headers: dict[str, str]


async def publish_batch(nc: Client, messages: Sequence[Message], *, timeout: float = 10.0) -> StreamAck:
    """Send `messages` as one atomic batch and wait for the commit's ack (the last message's
    sequence). Raises APIError (its `err_code` says why) when the stream refused the batch, and
    nats-py's TimeoutError / NoRespondersError when no answer came (the batch may or may not be
    stored: send it again, its expected-sequence headers refuse a second copy)."""
    if not messages:
        raise ValueError("an atomic batch holds at least one message")
    batch_id = uuid.uuid4().hex
    last = len(messages)
    for sequence, message in enumerate(messages[:-1], 1):
        headers = {**message.headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(sequence)}
        await nc.publish(message.subject, message.payload, headers=headers)
    final = messages[-1]
    headers = {**final.headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(last), "Nats-Batch-Commit": "1"}
    reply = await nc.request(final.subject, final.payload, timeout=timeout, headers=headers)
    ack = ack_decoder.decode(reply.data)
    if ack.error is not None:
        APIError.from_error(ack.error)  # raises the subclass for the code
    return ack


async def publish_batch_reliably(nc: Client, messages: Sequence[Message], *, timeout: float = 10.0,
                                 give_up_after: float = 30.0) -> StreamAck:
    """`publish_batch`, sent again (as a new batch) after a timeout, no responders or a batch the
    server saw incomplete, with bounded backoff. A refusal for any other reason is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    delay = 0.05
    while True:
        try:
            return await publish_batch(nc, messages, timeout=timeout)
        except APIError as exc:
            if exc.err_code != BATCH_INCOMPLETE_ERR or loop.time() >= deadline:
                raise
            log.warning("an atomic batch of %d messages arrived incomplete; sending it again", len(messages))
        except _TRANSIENT as exc:
            if loop.time() >= deadline:
                raise
            log.warning("an atomic batch of %d messages got no answer (%s); sending it again", len(messages),
                        type(exc).__name__)
        await asyncio.sleep(delay * (0.5 + random.random()))  # backoff with jitter
        delay = min(delay * 2, 2.0)
