"""Processors announce themselves: each writes its own entry in the `workers` KV bucket every few
seconds (a beat), the gateway watches the bucket (`GET /api/workers`, the Workers page), and an
operator drains one (it takes no new job and finishes what it runs) by a request on
`rpc.workers.<id>.<action>` that only that processor answers.

A processor that stops beating (killed, cut off) is shown as gone once three beats are missed; the
bucket forgets its entry after `WORKERS_TTL_S`. One that stops cleanly deletes its entry.
"""

from __future__ import annotations

import re
import time
from typing import Literal

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .names import Names

WORKERS_TTL_S = 300.0  # an entry not rewritten this long is dropped by the bucket itself
MISSED_BEATS = 3  # a worker that missed this many beats is shown as gone
RUNNING_SHOWN = 100  # the jobs running now that an entry lists, at most
WORKER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
_WORKER_ID_RE = re.compile(WORKER_ID_PATTERN)
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_-]+")

WorkerState = Literal["up", "draining", "drained", "gone"]
WorkerAction = Literal["drain", "resume"]
WORKER_ACTIONS: tuple[WorkerAction, ...] = ("drain", "resume")


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A processor's entry, as it writes it at every beat (`GET /api/workers` adds `state`)."""

    id: str  # `<host>-<pid>`: a KV key and a subject token
    instance: str  # the name its logs carry (`processor@<host>:<pid>`)
    host: str
    pid: int
    version: str
    types: list[str]  # the job types it serves
    slots: int  # jobs it runs at once at most
    running: int  # jobs it runs now
    jobs: list[str] = msgspec.field(default_factory=list)  # ids of the jobs it runs now (at most RUNNING_SHOWN)
    jobs_done: int = 0  # jobs it finished since it started
    started_at: float = 0.0
    beat_at: float = 0.0  # when it wrote this entry (its clock)
    beat_s: float = 5.0  # how often it writes it
    draining: bool = False  # told to take no new job (it finishes what it runs)

    def state_at(self, now: float | None = None) -> WorkerState:
        if (time.time() if now is None else now) - self.beat_at > MISSED_BEATS * self.beat_s + 1.0:
            return "gone"
        if self.draining:
            return "draining" if self.running else "drained"
        return "up"


class WorkerView(WorkerInfo, kw_only=True):
    """`GET /api/workers`: an entry and what it means now."""

    state: WorkerState = "up"
    free: int = 0  # slots free for new jobs (none while draining)


def worker_id(host: str, pid: int) -> str:
    return f"{_NOT_IN_ID.sub('-', host).strip('-')[:100] or 'host'}-{pid}"


def is_valid_worker_id(value: str) -> bool:
    return _WORKER_ID_RE.fullmatch(value) is not None


def view_of(info: WorkerInfo, now: float | None = None) -> WorkerView:
    state = info.state_at(now)
    return WorkerView(**msgspec.structs.asdict(info), state=state,
                      free=0 if info.draining or state == "gone" else max(info.slots - info.running, 0))


def workers_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.workers_bucket, history=1, ttl=WORKERS_TTL_S, storage=StorageType.FILE,
                          replicas=replicas)


worker_decoder = msgspec.json.Decoder(WorkerInfo)
