"""Applying a job type's queue controls to its queue (the durable every processor of the type
shares): both the gateway (when the controls change) and a processor (when it creates the queue)
do it, from the same KV value, so whichever comes last leaves the queue as the value says."""

from __future__ import annotations

import dataclasses
import logging
from typing import NamedTuple

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from jobline.contract.names import PRIORITY_MIN, Names
from jobline.contract.queues import QueueControls

log = logging.getLogger(__name__)
FOREVER = "2999-01-01T00:00:00Z"  # a paused queue's pause_until: until it is resumed


DEFAULT_ACK_WAIT_S = 30.0  # of a queue the gateway creates (the processor's JOBLINE_ACK_WAIT_S replaces it)


def queue_config(names: Names, job_type: str, controls: QueueControls, ack_wait_s: float,
                 priority: int = PRIORITY_MIN, lane: int | None = None) -> ConsumerConfig:
    band = f" of priority {priority}" if priority != PRIORITY_MIN else ""
    if lane is not None:
        band += f", owner lane {lane}"
    return ConsumerConfig(
        durable_name=names.band_durable(job_type, priority, lane),
        description=f"the queue of {job_type}{band}: shared by every processor serving it",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=-1,  # attempts are counted by the processor, which ends the job when they run out
        max_ack_pending=controls.max_ack_pending,
        filter_subject=names.created_filter(job_type, priority, lane),
        pause_until=FOREVER if controls.paused else None,
    )


async def create_queue_if_missing(js: JetStreamContext, names: Names, job_type: str, controls: QueueControls,
                                  priority: int, lane: int | None = None) -> None:
    """The queue of a priority band (or of an owner lane of it), made when its first job is submitted
    (a band nobody uses costs the cluster no consumer); an existing one is left as it is (its
    processors' settings)."""
    durable = names.band_durable(job_type, priority, lane)
    try:
        await js.consumer_info(names.jobs_stream, durable)
    except NotFoundError:
        await js.add_consumer(names.jobs_stream,
                              queue_config(names, job_type, controls, DEFAULT_ACK_WAIT_S, priority, lane))
        log.info("created queue %s", durable)


class QueueInfo(NamedTuple):
    """One queue of a type as the broker has it now."""

    durable: str
    priority: int
    lane: int | None  # an owner lane of the band, or None: the band's own queue
    waiting: int  # never delivered
    running: int  # delivered, not acked (running, or back from a processor: a retry's backoff)


async def queues_of(js: JetStreamContext, names: Names, job_type: str) -> list[QueueInfo]:
    """Every queue of a type that exists (bands and owner lanes), from the stream's consumer list."""
    found: list[QueueInfo] = []
    offset = 0
    while True:
        page = await js.consumers_info(names.jobs_stream, offset=offset or None)
        for info in page:
            key = names.queue_of(info.name, job_type)
            if key is not None:
                found.append(QueueInfo(info.name, key[0], key[1], int(info.num_pending or 0),
                                       int(info.num_ack_pending or 0)))
        offset += len(page)
        if len(page) < 256:  # (the server's page size)
            return found


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
