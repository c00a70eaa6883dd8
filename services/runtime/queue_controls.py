"""Applying a job type's queue controls to its queue (the durable every processor of the type
shares): both the gateway (when the controls change) and a processor (when it creates the queue)
do it, from the same KV value, so whichever comes last leaves the queue as the value says."""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.queues import QueueControls

log = logging.getLogger(__name__)
FOREVER = "2999-01-01T00:00:00Z"  # a paused queue's pause_until: until it is resumed


async def apply_controls(js: JetStreamContext, stream: str, durable: str, controls: QueueControls) -> bool:
    """Make the queue match `controls`; False when it does not exist (yet)."""
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return False
    config = info.config
    if (config.max_ack_pending or 0) != controls.max_ack_pending:
        await js.add_consumer(stream, dataclasses.replace(config, max_ack_pending=controls.max_ack_pending))
        log.info("queue %s: at most %s running", durable, controls.concurrency or "any number")
    if controls.paused and not info.paused:
        await js.pause_consumer(stream, durable, FOREVER)
        log.info("queue %s paused", durable)
    elif not controls.paused and info.paused:
        await js.resume_consumer(stream, durable)
        log.info("queue %s resumed", durable)
    return True
