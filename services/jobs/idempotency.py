"""Idempotency-Key → job id, in a KV bucket: one job per key, across replicas and restarts, for
longer than JetStream's duplicate window."""

from __future__ import annotations

import hashlib

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.names import Names
from jobline.runtime.buckets import key_value

from .errors import Conflict


async def open_bucket(js: JetStreamContext, names: Names, ttl_s: float, replicas: int) -> KeyValue:
    return await key_value(js, KeyValueConfig(
        bucket=names.idempotency_bucket, history=1, ttl=ttl_s, storage=StorageType.FILE, replicas=replicas))


def kv_key(idempotency_key: str) -> str:
    # Hashed: the client's key may hold any characters, a KV key may not.
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def fingerprint(request: object) -> str:
    """What a request asked for, as a short digest (keys sorted: the order of a JSON object's
    members is not part of what it says)."""
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).hexdigest()[:32]


class KeyReused(Conflict):
    """The Idempotency-Key is bound to a request that asked for something else (as well-known APIs
    answer a reused key: a refusal, never the other request's result)."""

    title = "Idempotency-Key reused"

    @classmethod
    def of(cls, key: str) -> KeyReused:
        return cls(f"the Idempotency-Key {key[:64]!r} was used before for a different request; use a new key for "
                   "a new request", key="Idempotency-Key", source="header", message="bound to a different request")


async def claim(bucket: KeyValue, idempotency_key: str, job_id: str, request_fingerprint: str | None = None) -> str:
    """Bind the key to `job_id` unless it is bound already; returns the job id it is bound to.
    `create` is atomic on the server, so of many concurrent requests exactly one wins. With a
    fingerprint, a key bound by a request that asked for something else raises KeyReused."""
    key = kv_key(idempotency_key)
    value = job_id if request_fingerprint is None else f"{job_id} {request_fingerprint}"
    try:
        await bucket.create(key, value.encode())
        return job_id
    except KeyWrongLastSequenceError:
        entry = await bucket.get(key)
    bound_id, _, bound_fingerprint = (entry.value or b"").decode().partition(" ")
    if request_fingerprint is not None and bound_fingerprint and bound_fingerprint != request_fingerprint:
        raise KeyReused.of(idempotency_key)
    return bound_id


async def release(bucket: KeyValue, idempotency_key: str, job_id: str) -> None:
    """Unbind the key if it is still bound to `job_id` (a request that stored nothing after all)."""
    key = kv_key(idempotency_key)
    try:
        entry = await bucket.get(key)
        if (entry.value or b"").decode().partition(" ")[0] == job_id:
            await bucket.delete(key, last=entry.revision)
    except (KeyNotFoundError, KeyWrongLastSequenceError):
        pass  # (gone, or rebound meanwhile: not ours to remove)
