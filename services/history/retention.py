"""Retention of history by age: jobs that ended longer ago than `max_age_s` are removed with their
events, their counts and their activity minutes. Jobs that have not ended are never removed.

Runs in the writer thread between batches, in small transactions, so ingest never waits long.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from .database import Database

log = logging.getLogger(__name__)
CHUNK = 1000


def prune(db: Database, conn: Any, max_age_s: float, *, now: float | None = None, budget_s: float = 0.5) -> tuple[int, bool]:
    """Remove up to `budget_s` worth of expired jobs; returns (jobs removed, whether more remain)."""
    if max_age_s <= 0:
        return 0, False
    cutoff = (now if now is not None else time.time()) - max_age_s
    removed = 0
    began = time.monotonic()
    while time.monotonic() - began < budget_s:
        with db.transaction(conn):
            rows = conn.execute(db.sql("SELECT id, type, status FROM jobs WHERE finished_at < ? ORDER BY finished_at LIMIT ?"),
                                (cutoff, CHUNK)).fetchall()
            if not rows:
                conn.execute(db.sql("DELETE FROM job_minutes WHERE minute < ?"), (int(cutoff // 60) * 60,))
                return removed, False
            ids = [row[0] for row in rows]
            marks = ",".join("?" * len(ids))
            conn.execute(db.sql(f"DELETE FROM job_events WHERE job_id IN ({marks})"), ids)
            conn.execute(db.sql(f"DELETE FROM job_fields WHERE job_id IN ({marks})"), ids)
            conn.execute(db.sql(f"DELETE FROM job_tags WHERE job_id IN ({marks})"), ids)
            conn.execute(db.sql(f"DELETE FROM jobs WHERE id IN ({marks})"), ids)
            gone = Counter((row[1], row[2]) for row in rows)
            db.executemany(conn, db.sql("UPDATE job_counts SET n = n - ? WHERE type = ? AND status = ?"),
                           [(n, job_type, status) for (job_type, status), n in gone.items()])
        removed += len(ids)
    return removed, True
