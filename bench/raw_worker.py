"""The ceiling: a raw nats-py worker (pull consumer → completed event → ack), no Jobline code."""

from __future__ import annotations

import asyncio
import sys

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig

from . import loop


async def main(url: str, prefix: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(f"{prefix.upper()}_RAW", ConsumerConfig(durable_name="worker", ack_policy=AckPolicy.EXPLICIT,
                                                                  filter_subject=f"{prefix}.raw.*.created"))
    psub = await js.pull_subscribe_bind(durable="worker", stream=f"{prefix.upper()}_RAW")
    print("ready", flush=True)
    while True:
        try:
            msgs = await psub.fetch(256, timeout=5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        # Completed events published concurrently, their acks gathered, then the jobs acked.
        acks = [js.publish(msg.subject.rsplit(".", 1)[0] + ".done", msg.data) for msg in msgs]
        await asyncio.gather(*acks)
        for msg in msgs:
            await msg.ack()


if __name__ == "__main__":
    loop.run(main(sys.argv[1], sys.argv[2]))
