"""One job per key: a submission's `unique_key` held in the `unique_keys` KV bucket by the job that
has it, decided on the broker (a KV create, or an update at the revision read: of many concurrent
submissions through any number of gateways, exactly one takes a free key).

A key is free again when its holder no longer holds it, judged when the next submission with the key
comes — so nothing has to release it, and a `kill -9` of anything cannot leave it taken:
- `active`: the holder has ended (as the job's state says; a holder that is nowhere yet is its
  request still storing it, or one that died doing so: free after `STORING_GRACE_S`);
- `throttle`: the window since the holder was created has passed;
- `debounce`: the holder has not started yet — then the new submission takes the key, its job
  starts a window later, and the holder is cancelled, its error naming the job that replaced it;
  once the holder has started, the key is free (a new window begins).
"""

from __future__ import annotations

import hashlib
import time

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.job_state import JobState
from jobline.contract.submissions import JobSubmission
from jobline.contract.vocabulary import JobStatus

from .errors import Unavailable
from .history_client import HistoryUnavailable
from .reader import JobReader

UNIQUE_TTL_S = 7 * 86400.0  # a key not submitted again for this long is forgotten by the bucket
STORING_GRACE_S = 30.0  # a holder not found this long after it took the key was never stored
TRIES = 8


class Hold(msgspec.Struct):
    job_id: str
    at: float  # when it took the key


_hold_decoder = msgspec.json.Decoder(Hold)


def bucket_config(bucket: str, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=bucket, history=1, ttl=UNIQUE_TTL_S, storage=StorageType.FILE, replicas=replicas)


def kv_key(job_type: str, unique_key: str) -> str:
    # Hashed: the client's key may hold any characters, a KV key may not.
    return f"{job_type}.{hashlib.sha256(unique_key.encode()).hexdigest()[:40]}"


class Taken(Exception):
    """The key is held: `job_id` answers the submission (nothing is made)."""

    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


class UniqueKeys:
    def __init__(self, kv: KeyValue, reader: JobReader):
        self._kv = kv
        self._reader = reader

    async def take(self, submission: JobSubmission, job_id: str, submitted_at: float) -> str | None:
        """Take the submission's key for `job_id` (created at `submitted_at`). Returns the job it
        replaces (debounce: cancel it once the new job is stored), else None; raises Taken when the
        key is held."""
        assert submission.unique_key is not None
        key = kv_key(submission.type, submission.unique_key)
        value = msgspec.json.encode(Hold(job_id=job_id, at=submitted_at))
        for _ in range(TRIES):
            try:
                await self._kv.create(key, value)
                return None
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                continue  # (removed meanwhile: create it again)
            hold = _hold_decoder.decode(entry.value or b"{}")
            holder = await self._state(hold.job_id)
            replaced = self._replaces(submission, hold, holder, submitted_at)
            try:
                await self._kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another submission took it first: look again
            return replaced
        raise Unavailable("the unique key kept changing hands; try again", title="Unique key busy")

    def _replaces(self, submission: JobSubmission, hold: Hold, holder: JobState | None,
                  submitted_at: float) -> str | None:
        """Whether the key is free (None, or the job to replace); Taken when it is held."""
        if holder is None:  # not stored (yet): its request is storing it, or died doing so
            if time.time() - hold.at < STORING_GRACE_S:
                raise Taken(hold.job_id)
            return None
        match submission.unique_mode:
            case "throttle":
                # By the two jobs' own creation times: the window a user sees on them is the one enforced.
                if submitted_at - (holder.created_at or hold.at) < (submission.unique_window_s or 0.0):
                    raise Taken(hold.job_id)
                return None
            case "debounce":
                return holder.id if holder.status == JobStatus.SCHEDULED else None
            case _:
                if not holder.is_terminal:
                    raise Taken(hold.job_id)
                return None

    async def _state(self, job_id: str) -> JobState | None:
        try:
            return await self._reader.lookup(job_id)
        except HistoryUnavailable as exc:
            raise Unavailable(f"the job that holds this unique key cannot be looked up now ({exc}); nothing was "
                              "created", title="History unavailable") from exc

    async def release(self, submission: JobSubmission, job_id: str) -> None:
        """Free the key if `job_id` still holds it (its job could not be stored)."""
        assert submission.unique_key is not None
        key = kv_key(submission.type, submission.unique_key)
        try:
            entry = await self._kv.get(key)
            if _hold_decoder.decode(entry.value or b"{}").job_id == job_id:
                await self._kv.delete(key, last=entry.revision)
        except (KeyNotFoundError, KeyWrongLastSequenceError, msgspec.DecodeError):
            pass
