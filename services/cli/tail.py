"""`jobline tail`: raw events from NATS with their subject and stream sequence."""

from __future__ import annotations

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from jobline.contract.names import Names


async def tail(url: str, namespace: str, subject: str | None, from_start: bool, count: int) -> int:
    names = Names(namespace)
    subject = subject or names.all_job_events
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        stream = await js.find_stream_name_by_subject(subject)
        policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, config=ConsumerConfig(deliver_policy=policy))
        seen = 0
        try:
            while count <= 0 or seen < count:
                try:
                    msg = await sub.next_msg(timeout=3600)
                except nats.errors.TimeoutError:
                    continue
                seen += 1
                print(f"[{stream} #{msg.metadata.sequence.stream}] {msg.subject} {msg.data.decode(errors='replace')}", flush=True)
        finally:
            await sub.unsubscribe()
    except KeyboardInterrupt:
        pass
    finally:
        await nc.close()
    return 0

