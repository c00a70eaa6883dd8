"""Open (or create) the KV and Object Store buckets at start, waiting like the streams do for a
cluster that is still electing its JetStream leaders (all nodes just started)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from .stream_setup import when_jetstream_ready


async def key_value(js: JetStreamContext, config: KeyValueConfig, ready_timeout_s: float = 60.0) -> KeyValue:
    async def open_or_create() -> KeyValue:
        try:
            return await js.key_value(config.bucket)
        except BucketNotFoundError:
            return await js.create_key_value(config)

    return await when_jetstream_ready(open_or_create, f"KV bucket {config.bucket}", ready_timeout_s)


async def object_store(js: JetStreamContext, bucket: str, replicas: int, ready_timeout_s: float = 60.0) -> ObjectStore:
    async def open_or_create() -> ObjectStore:
        try:
            return await js.object_store(bucket)
        except BucketNotFoundError:
            return await js.create_object_store(
                bucket, config=ObjectStoreConfig(bucket=bucket, storage=StorageType.FILE, replicas=replicas))

    return await when_jetstream_ready(open_or_create, f"object store {bucket}", ready_timeout_s)


async def bucket_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """Every key of a KV bucket that has a value or had one (deleted keys included: a `get` tells).

    From the stream's own per-subject counts, taken at one moment by the server: nats-py's
    `kv.keys()` walks the bucket with a consumer and can miss a key rewritten while it walks (with
    history 1 the message it was about to deliver is replaced)."""
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    return sorted(subject[len(prefix):] for subject in (info.state.subjects or {}))
