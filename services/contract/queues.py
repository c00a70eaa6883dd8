"""Queue controls of a job type: pause, cluster-wide concurrency and a rate limit.

Set through the gateway's API and kept in the `queue_controls` KV bucket; the broker enforces them:
the type's queue (`queue-<type>`, the durable consumer its processors share) is paused with
JetStream's consumer pause and its `max_ack_pending` is the concurrency limit; starts of a
rate-limited type each take a message in a `RATE_<type>` stream that refuses more than `rate_max`
messages younger than `rate_window_s`.
"""

from __future__ import annotations

import msgspec
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig

from .names import Names

UNLIMITED = -1  # max_ack_pending without a limit


class QueueControls(msgspec.Struct, kw_only=True):
    paused: bool = False
    concurrency: int | None = None  # jobs of the type running at once on the whole cluster
    key_concurrency: int | None = None  # jobs of the type running at once per concurrency_key
    rate_max: int | None = None  # at most this many starts …
    rate_window_s: float = 1.0  # … in any window this long
    updated_at: float = 0.0

    @property
    def max_ack_pending(self) -> int:
        return self.concurrency if self.concurrency is not None else UNLIMITED


class QueueView(msgspec.Struct, kw_only=True):
    """`GET /api/queues/{type}`: the controls and what the queue holds now."""

    type: str
    paused: bool
    concurrency: int | None
    key_concurrency: int | None
    rate_max: int | None
    rate_window_s: float
    waiting: int  # jobs not yet handed to a processor (a retrying job waiting out its backoff included)
    running: int  # handed to a processor and not yet acknowledged (running, or waiting for a rate token)
    updated_at: float
    workers: int = 0  # processors serving the type now (not gone; drained ones included)


controls_decoder = msgspec.json.Decoder(QueueControls)


def queue_controls_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.queue_controls_bucket, history=1, storage=StorageType.FILE, replicas=replicas)


def key_slots_bucket_config(names: Names, ttl_s: float, replicas: int) -> KeyValueConfig:
    """Per-key slots: an entry not renewed for `ttl_s` (its holder died) expires, freeing the slot."""
    return KeyValueConfig(bucket=names.key_slots_bucket, history=1, ttl=ttl_s, storage=StorageType.FILE,
                          replicas=replicas)


def rate_stream_config(names: Names, job_type: str, controls: QueueControls, replicas: int) -> StreamConfig:
    assert controls.rate_max is not None
    return StreamConfig(
        name=names.rate_stream(job_type),
        description=f"start tokens of {job_type}: at most {controls.rate_max} per {controls.rate_window_s:g}s",
        subjects=[names.rate_tokens(job_type)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.MEMORY,  # a second's worth of tokens: losing them on a restart only resets the window
        discard=DiscardPolicy.NEW,
        max_msgs=controls.rate_max,
        max_age=controls.rate_window_s,
        num_replicas=replicas,
    )
