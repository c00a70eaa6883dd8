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
