"""Idempotency-Key → job id, in a KV bucket: one job per key, across replicas and restarts, for
longer than JetStream's duplicate window."""

from __future__ import annotations

import hashlib

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.names import Names
from jobline.runtime.buckets import key_value

MAX_KEY_LENGTH = 255


async def open_bucket(js: JetStreamContext, names: Names, ttl_s: float, replicas: int) -> KeyValue:
    return await key_value(js, KeyValueConfig(
        bucket=names.idempotency_bucket, history=1, ttl=ttl_s, storage=StorageType.FILE, replicas=replicas))


def kv_key(idempotency_key: str) -> str:
    # Hashed: the client's key may hold any characters, a KV key may not.
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


async def claim(bucket: KeyValue, idempotency_key: str, job_id: str) -> str:
    """Bind the key to `job_id` unless it is bound already; returns the job id it is bound to.
    `create` is atomic on the server, so of many concurrent requests exactly one wins."""
    key = kv_key(idempotency_key)
    try:
        await bucket.create(key, job_id.encode())
        return job_id
    except KeyWrongLastSequenceError:
        entry = await bucket.get(key)
        return (entry.value or b"").decode()
