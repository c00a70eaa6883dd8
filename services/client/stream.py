"""Server-Sent Events from the gateway: parsed, resumed with `Last-Event-ID`, typed.

`RawEvent` is one frame as sent (kind, JSON data, id). `typed()` turns it into the contract's own
msgspec types: a `JobEvent` (`JobStarted`, `ProgressReported`, `JobCompleted`, …), a `Snapshot` (the
state a stream starts from, or a `reset` one when a cursor could not be resumed), or `ReplayEnded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from jobline.contract.events import JobEvent, LogLineWritten, job_event_decoder, tags_of
from jobline.contract.job_state import JobState


@dataclass(frozen=True)
class RawEvent:
    kind: str  # the SSE `event:` field
    data: bytes  # JSON
    id: int | None  # the stream sequence (`id:`), None for frames that carry none

    def json(self) -> Any:
        return msgspec.json.decode(self.data)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Where a stream starts: the job's state and its recent log lines. `reset` is True when the
    client's cursor could not be resumed (the state then replaces what the client had)."""

    job: JobState
    logs: list[LogLineWritten] = []
    reset: bool = False


class ReplayEnded(msgspec.Struct, frozen=True):
    """A replay has sent its last event."""


StreamEvent = JobEvent | Snapshot | ReplayEnded

_snapshot_decoder = msgspec.json.Decoder(Snapshot)
JOB_EVENT_KINDS = tags_of(JobEvent)


def typed(event: RawEvent) -> StreamEvent | None:
    """The frame as a contract type; None for a kind this client does not know (a newer server)."""
    if event.kind in ("snapshot", "reset"):
        snapshot = _snapshot_decoder.decode(event.data)
        return msgspec.structs.replace(snapshot, reset=True) if event.kind == "reset" else snapshot
    if event.kind == "replay_end":
        return ReplayEnded()
    if event.kind in JOB_EVENT_KINDS:
        return job_event_decoder.decode(event.data)
    return None
