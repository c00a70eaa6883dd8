"""Batches on the wire: the record the gateway keeps in the `batches` KV bucket, and what the API
answers about a batch (the client library reads the same types)."""

from __future__ import annotations

from typing import Final

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .names import Names


class BatchRecord(msgspec.Struct, kw_only=True):
    """KV `batches`, key = the batch id: written once its jobs are stored."""

    id: str
    created_at: float
    jobs: list[str]


class BatchAccepted(msgspec.Struct):
    """`POST /api/batches` → 202."""

    id: str
    jobs: list[str]
    links: dict[str, str]


class BatchFailure(msgspec.Struct):
    id: str
    status: str
    error: str | None
    reason: str | None


class BatchJobState(msgspec.Struct):
    id: str
    status: str
    progress: float | None


class BatchState(msgspec.Struct, kw_only=True):
    """`GET /api/batches/{id}`: the fold of its jobs' states."""

    id: str
    status: str  # running | completed (every job ended, whatever its outcome)
    created_at: float
    completed_at: float | None
    total: int
    counts: dict[str, int]  # jobs per status
    ended: int
    progress: float  # 0..1: ended jobs plus the running jobs' own fractions
    eta_s: float | None
    failures: list[BatchFailure]  # failed and expired jobs with their errors (the first 100)
    jobs: list[BatchJobState]
    links: dict[str, str]


class BatchSummary(msgspec.Struct, kw_only=True):
    """An entry of `GET /api/batches` (the newest first)."""

    id: str
    created_at: float
    total: int
    links: dict[str, str]


record_decoder: Final = msgspec.json.Decoder(BatchRecord)


def batches_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.batches_bucket, history=1, storage=StorageType.FILE, replicas=replicas)
