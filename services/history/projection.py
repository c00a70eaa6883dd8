"""The write side: batches of job-stream messages folded into the database, one transaction each.

Every message is applied once: the batch's rows and the new `applied_seq` commit together, and a
message at or below `applied_seq` (a redelivery after a crash between the commit and the ack) is
skipped. Each job's row holds its state as the contract's one fold computes it (`job_state.apply`,
the same the gateway runs), and every event is kept as stored, so a job's timeline outlives the
stream's retention.

Runs in the writer thread only (blocking calls on the writer's connection).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from jobline.contract.events import JobDeleted, JobEvent, encoder, job_event_decoder, kind_of
from jobline.contract.job_state import JobState, apply, start_state
from jobline.contract.vocabulary import JobStatus
from jobline.runtime.stream_writer import Delivered

from . import activity, fields
from .database import Database

log = logging.getLogger(__name__)
_state_decoder = msgspec.json.Decoder(JobState)
# JSON's \u0000 escape: PostgreSQL's jsonb cannot hold that character (text columns neither).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass
class _Decoded:
    message: Delivered
    event: JobEvent | None  # None: not a job event we can read (kept out, logged)


class Projection:
    def __init__(self, db: Database, cache_size: int = 20_000):
        self.db = db
        self.applied_seq = 0
        self._cache: OrderedDict[str, JobState] = OrderedDict()  # states of jobs still running
        self._cache_size = cache_size
        self._pg = db.backend == "postgresql"
        # Multi-row statements (Database.insert_rows): table, (column, PostgreSQL type)s, tail.
        self._jobs = ("jobs", [("id", "text"), ("type", "text"), ("status", "text"), ("created_seq", "bigint"),
                               ("seq", "bigint"), ("created_at", "float8"), ("started_at", "float8"),
                               ("finished_at", "float8"), ("attempt", "int"), ("error", "text"), ("error_reason", "text"),
                               ("state", "jsonb"), ("fields_partial", "int"), ("owner", "text")],
                      "ON CONFLICT (id) DO UPDATE SET status = excluded.status, seq = excluded.seq, "
                      "started_at = excluded.started_at, finished_at = excluded.finished_at, attempt = excluded.attempt, "
                      "error = excluded.error, error_reason = excluded.error_reason, state = excluded.state, "
                      "fields_partial = CASE WHEN excluded.fields_partial > jobs.fields_partial "
                      "THEN excluded.fields_partial ELSE jobs.fields_partial END")
        self._tags_rows = ("job_tags", [("job_id", "text"), ("tag", "text"), ("created_seq", "bigint")],
                           "ON CONFLICT (job_id, tag) DO NOTHING")
        self._fields_rows = ("job_fields", [("job_id", "text"), ("path", "text"), ("value", "text"),
                                            ("created_seq", "bigint")],
                             "ON CONFLICT (job_id, path) DO UPDATE SET value = excluded.value")
        self._events = ("job_events", [("seq", "bigint"), ("job_id", "text"), ("kind", "text"), ("subject", "text"),
                                       ("stored_at", "float8"), ("data", "text")], "ON CONFLICT (seq) DO NOTHING")
        self._counts_rows = ("job_counts", [("type", "text"), ("status", "text"), ("n", "bigint")],
                             "ON CONFLICT (type, status) DO UPDATE SET n = job_counts.n + excluded.n")
        self._minutes_rows = ("job_minutes", [("minute", "bigint"), ("type", "text"), ("status", "text"), ("n", "bigint"),
                                              ("run_bins", "text"), ("run_max_s", "float8")],
                              "ON CONFLICT (minute, type, status) DO UPDATE SET n = excluded.n, "
                              "run_bins = excluded.run_bins, run_max_s = excluded.run_max_s")
        self._applied = db.sql("UPDATE projection SET applied_seq = ? WHERE name = 'jobs'")
        self._deleted: set[str] = set()  # jobs the batch being written deleted

    def open(self, conn: Any) -> int:
        (self.applied_seq,) = conn.execute("SELECT applied_seq FROM projection WHERE name = 'jobs'").fetchone()
        self.applied_seq = int(self.applied_seq)
        return self.applied_seq

    def forget(self) -> None:
        """Drop cached states (after a failed transaction they may hold its uncommitted changes)."""
        self._cache.clear()

    # --- one batch ---------------------------------------------------------------------
    def apply_batch(self, conn: Any, batch: Sequence[Delivered]) -> int:
        """Fold and store the messages after `applied_seq`; returns how many were new. Raises
        what the database raises, with nothing committed."""
        fresh = [m for m in batch if m.seq > self.applied_seq]
        if not fresh:
            return 0
        fresh.sort(key=lambda m: m.seq)
        decoded = [_Decoded(m, _decode(m)) for m in fresh]
        try:
            with self.db.transaction(conn):
                changed = self._write(conn, decoded)
                conn.execute(self._applied, (fresh[-1].seq,))
        except BaseException:
            self.forget()
            raise
        self.applied_seq = fresh[-1].seq
        for state in changed:
            if state.is_terminal or state.id in self._deleted:
                self._cache.pop(state.id, None)
            else:
                self._cache[state.id] = state
                self._cache.move_to_end(state.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return len(fresh)

    def _write(self, conn: Any, decoded: list[_Decoded]) -> list[JobState]:
        ids = {d.event.job_id for d in decoded if d.event is not None}
        states = self._states(conn, ids)
        before: dict[str, tuple[str, str] | None] = {}  # (type, status) before this batch; None: new
        touched: dict[str, JobState] = {}
        deleted: dict[str, JobState] = {}
        event_rows = []
        for item in decoded:
            event, message = item.event, item.message
            if event is None:
                continue
            job_id = event.job_id
            if isinstance(event, JobDeleted):
                if job_id in states and states[job_id].is_terminal:
                    deleted[job_id] = states.pop(job_id)
                continue
            event_rows.append((message.seq, job_id, kind_of(event), message.subject, message.stored_at,
                               _text(message.data.decode(), self._pg)))
            state = states.get(job_id)
            if state is None:
                started = start_state(event, message.seq)
                if started is not None:
                    states[job_id] = touched[job_id] = started
                    before[job_id] = None
                continue  # an event of a job created before the stream's oldest event: kept, no row
            if job_id not in before:
                before[job_id] = (state.type, state.status)
            if apply(state, event, message.seq):
                touched[job_id] = state
        if event_rows:
            self.db.insert_rows(conn, *self._events[:2], event_rows, self._events[2])
        if touched:
            partial = self._fields(conn, touched, before)
            rows = [self._job_row(state, partial.get(job_id, False)) for job_id, state in touched.items()]
            self.db.insert_rows(conn, *self._jobs[:2], rows, self._jobs[2])
            tags = [(job_id, tag, state.created_seq) for job_id, state in touched.items()
                    if before.get(job_id) is None for tag in state.tags]
            if tags:
                self.db.insert_rows(conn, *self._tags_rows[:2], tags, self._tags_rows[2])
            self._counts(conn, touched, before)
            self._minutes(conn, touched, before)
        if deleted:
            self._delete(conn, deleted)
        self._deleted = set(deleted)
        return list(touched.values())

    def _delete(self, conn: Any, deleted: dict[str, JobState]) -> None:
        """Jobs deleted from history: their rows, their indexes and their stored events, and they no
        longer count (what ended per minute stays: it is what happened)."""
        ids = list(deleted)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(self.db.sql(f"DELETE FROM jobs WHERE id IN ({marks})"), chunk)
            for table in ("job_tags", "job_fields", "job_events"):
                conn.execute(self.db.sql(f"DELETE FROM {table} WHERE job_id IN ({marks})"), chunk)
        gone = Counter((state.type, state.status) for state in deleted.values())
        rows = [(job_type, status, -n) for (job_type, status), n in gone.items()]
        self.db.insert_rows(conn, *self._counts_rows[:2], rows, self._counts_rows[2])

    def _states(self, conn: Any, ids: set[str]) -> dict[str, JobState]:
        states = {job_id: self._cache[job_id] for job_id in ids if job_id in self._cache}
        missing = [job_id for job_id in ids if job_id not in states]
        column = "state::text" if self._pg else "state"
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for job_id, text in conn.execute(self.db.sql(f"SELECT id, {column} FROM jobs WHERE id IN ({marks})"),
                                             chunk).fetchall():
                states[job_id] = _state_decoder.decode(text)
        return states

    def _job_row(self, state: JobState, fields_partial: bool) -> tuple[Any, ...]:
        error = state.error.replace("\x00", "\ufffd") if state.error else state.error
        return (state.id, state.type, state.status, state.created_seq, state.seq, state.created_at, state.started_at,
                state.finished_at, state.attempt, error, state.error_reason,
                _text(encoder.encode(state).decode(), self._pg), int(fields_partial), state.owner)

    def _fields(self, conn: Any, touched: dict[str, JobState], before: dict[str, tuple[str, str] | None]) -> dict[str, bool]:
        """Index the params of new jobs and the result of jobs that just completed; which of them
        did not fit entirely (fields.py)."""
        rows: list[tuple[str, str, str, int]] = []
        partial: dict[str, bool] = {}
        for job_id, state in touched.items():
            old = before.get(job_id)
            roots = []
            if old is None:
                roots.append(("params", state.params))
            if state.status == JobStatus.COMPLETED and (old is None or old[1] != JobStatus.COMPLETED):
                roots.append(("result", state.result))
            for root, value in roots:
                leaves, cut = fields.leaves(root, value)
                rows += [(job_id, path, text, state.created_seq) for path, text in leaves]
                partial[job_id] = partial.get(job_id, False) or cut
        if rows:
            self.db.insert_rows(conn, *self._fields_rows[:2], rows, self._fields_rows[2])
        return partial

    def _counts(self, conn: Any, touched: dict[str, JobState], before: dict[str, tuple[str, str] | None]) -> None:
        deltas: Counter[tuple[str, str]] = Counter()
        for job_id, state in touched.items():
            old = before.get(job_id)
            if old == (state.type, state.status):
                continue
            if old is not None:
                deltas[old] -= 1
            deltas[(state.type, state.status)] += 1
        rows = [(job_type, status, n) for (job_type, status), n in deltas.items() if n]
        if rows:
            self.db.insert_rows(conn, *self._counts_rows[:2], rows, self._counts_rows[2])

    def _minutes(self, conn: Any, touched: dict[str, JobState], before: dict[str, tuple[str, str] | None]) -> None:
        """Jobs that ended in this batch, into their minute's row (count and run-time histogram)."""
        ended: activity.EndedByMinute = {}
        for job_id, state in touched.items():
            old = before.get(job_id)
            if not state.is_terminal or state.finished_at is None or (old is not None and old[1] == state.status):
                continue
            activity.count_end(ended, state.type, state.status, state.started_at, state.finished_at)
        if not ended:
            return
        keys = list(ended)
        stored: dict[tuple[int, str, str], tuple[int, str, float | None]] = {}
        for start in range(0, len(keys), 1000):  # what those minutes already hold, in one query per 1,000
            chunk = keys[start:start + 1000]
            found = conn.execute(self.db.sql(
                "SELECT minute, type, status, n, run_bins, run_max_s FROM job_minutes WHERE (minute, type, status) IN "
                f"(VALUES {','.join(['(?,?,?)'] * len(chunk))})"), [v for key in chunk for v in key]).fetchall()
            stored.update({(int(m), t, st): (int(n), b, mx) for m, t, st, n, b, mx in found})
        rows = []
        for key, (n, bins, max_s) in ended.items():
            if key in stored:
                old_n, old_bins, old_max = stored[key]
                n += old_n
                bins.update({int(k): v for k, v in json.loads(old_bins).items()})
                if old_max is not None:
                    max_s = old_max if max_s is None else max(max_s, old_max)
            rows.append((*key, n, json.dumps({str(k): v for k, v in sorted(bins.items())}), max_s))
        self.db.insert_rows(conn, *self._minutes_rows[:2], rows, self._minutes_rows[2])


def _decode(message: Delivered) -> JobEvent | None:
    try:
        return job_event_decoder.decode(message.data)
    except msgspec.DecodeError as exc:
        log.warning("skipping job stream message %d on %s: not a job event (%s)", message.seq, message.subject, exc)
        return None


def _text(json_text: str, postgres: bool) -> str:
    if postgres and "\\u0000" in json_text:
        return _NUL_ESCAPE.sub(r"\1\\ufffd", json_text)
    return json_text

