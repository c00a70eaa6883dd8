"""Reading parts of one job's stored timeline back from the job stream."""

from __future__ import annotations

import asyncio
from collections import deque

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from jobline.contract.names import LOG, Names


async def recent_log_lines(js: JetStreamContext, names: Names, job_id: str, *, count: int, upto_seq: int,
                           keep: int, timeout: float = 5.0) -> list[bytes]:
    """The last `keep` of the job's first `count` log lines (those at or before `upto_seq`), as
    stored JSON. `count` comes from the read model, so the read stops without guessing."""
    if count <= 0 or keep <= 0:
        return []
    lines: deque[bytes] = deque(maxlen=keep)
    sub = await js.subscribe(names.job_event(job_id, LOG), stream=names.jobs_stream, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    try:
        async with asyncio.timeout(timeout):
            for _ in range(count):
                msg = await sub.next_msg(timeout=timeout)
                if msg.metadata.sequence.stream > upto_seq:
                    break
                lines.append(msg.data)
                if msg.metadata.num_pending == 0:
                    break
    except TimeoutError:
        pass  # a partial history beats none; the logs endpoint has the rest
    finally:
        await sub.unsubscribe()
    return list(lines)
