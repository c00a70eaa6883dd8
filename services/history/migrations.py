"""Versioned schema migrations: applied in order at start, up only, each recorded in the database.

A migration is a list of statements per backend (most are the same text on both; column types and
JSON storage differ). Each runs in one transaction together with its record in
`schema_migrations`, under a lock, so two history services starting at once apply it once. A
database already at a version this code does not know is refused: it was written by a newer Jobline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .database import Database

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x6A6F626C696E66


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]  # `{json}`, `{real}` and `{bigint}` are filled in per backend

    def sql(self, backend: str) -> list[str]:
        types = ({"json": "JSONB", "real": "DOUBLE PRECISION", "bigint": "BIGINT"} if backend == "postgresql"
                 else {"json": "TEXT", "real": "REAL", "bigint": "INTEGER"})
        return [statement.format(**types) for statement in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs, their events, counts and activity", (
        # One row per job: its current state (the contract's fold) and the columns lists filter on.
        """CREATE TABLE jobs (
            id           TEXT PRIMARY KEY,
            type         TEXT NOT NULL,
            status       TEXT NOT NULL,
            created_seq  {bigint} NOT NULL,  -- job stream sequence of its created event: the list cursor
            seq          {bigint} NOT NULL,  -- of the last event folded in
            created_at   {real} NOT NULL,
            started_at   {real},
            finished_at  {real},
            attempt      INTEGER NOT NULL,
            error        TEXT,
            error_reason TEXT,
            state        {json} NOT NULL
        )""",
        "CREATE UNIQUE INDEX jobs_by_created_seq ON jobs (created_seq)",
        "CREATE INDEX jobs_by_status ON jobs (status, created_seq)",
        "CREATE INDEX jobs_by_type ON jobs (type, created_seq)",
        "CREATE INDEX jobs_by_created_at ON jobs (created_at)",
        "CREATE INDEX jobs_by_finished_at ON jobs (finished_at)",
        "CREATE INDEX jobs_live ON jobs (created_seq) WHERE finished_at IS NULL",
        "CREATE INDEX jobs_with_error ON jobs (created_seq) WHERE error IS NOT NULL",
        # Every event of every job, exactly as stored in the stream, keyed by its stream sequence.
        """CREATE TABLE job_events (
            seq       {bigint} PRIMARY KEY,
            job_id    TEXT NOT NULL,
            kind      TEXT NOT NULL,
            subject   TEXT NOT NULL,
            stored_at {real} NOT NULL,
            data      TEXT NOT NULL
        )""",
        "CREATE INDEX job_events_by_job ON job_events (job_id, seq)",
        # Jobs per (type, status) over all history kept: the dashboard's totals without a scan.
        """CREATE TABLE job_counts (
            type   TEXT NOT NULL,
            status TEXT NOT NULL,
            n      {bigint} NOT NULL,
            PRIMARY KEY (type, status)
        )""",
        # Jobs that ended per minute, type and outcome, with a histogram of their run times
        # (log-spaced bins, see activity.py): the charts without a scan.
        """CREATE TABLE job_minutes (
            minute    {bigint} NOT NULL,  -- unix seconds, a multiple of 60
            type      TEXT NOT NULL,
            status    TEXT NOT NULL,
            n         {bigint} NOT NULL,
            run_bins  TEXT NOT NULL,  -- JSON object: bin index → count
            run_max_s {real},
            PRIMARY KEY (minute, type, status)
        )""",
        # How far the job stream is applied: written in the same transaction as the rows.
        "CREATE TABLE projection (name TEXT PRIMARY KEY, applied_seq {bigint} NOT NULL)",
        "INSERT INTO projection (name, applied_seq) VALUES ('jobs', 0)",
    )),
    Migration(2, "an index of params and result fields", (
        # Each scalar (or short) value of a job's params and result, by its path: a search by a
        # field is an index lookup instead of a scan of every job's JSON (fields.py).
        """CREATE TABLE job_fields (
            job_id      TEXT NOT NULL,
            path        TEXT NOT NULL,  -- params.height, result.output.codec
            value       TEXT NOT NULL,  -- the value's JSON text, canonical (fields.py)
            created_seq {bigint} NOT NULL,
            PRIMARY KEY (job_id, path)
        )""",
        "CREATE INDEX job_fields_by_value ON job_fields (path, value, created_seq)",
        # 1: some of the job's fields are not in job_fields (too many, too long, odd names): a
        # search also scans these jobs' JSON. Jobs stored before this migration are such jobs.
        "ALTER TABLE jobs ADD COLUMN fields_partial INTEGER NOT NULL DEFAULT 0",
        "UPDATE jobs SET fields_partial = 1",
        "CREATE INDEX jobs_fields_partial ON jobs (created_seq) WHERE fields_partial = 1",
    )),
    Migration(3, "owners and tags", (
        # Whose a job is, and its labels (set when it is created): lists filter on both.
        "ALTER TABLE jobs ADD COLUMN owner TEXT",
        "CREATE INDEX jobs_by_owner ON jobs (owner, created_seq) WHERE owner IS NOT NULL",
        """CREATE TABLE job_tags (
            job_id      TEXT NOT NULL,
            tag         TEXT NOT NULL,
            created_seq {bigint} NOT NULL,
            PRIMARY KEY (job_id, tag)
        )""",
        "CREATE INDEX job_tags_by_tag ON job_tags (tag, created_seq)",
    )),
)

LATEST = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    pass


def migrate(db: Database, conn: Any) -> int:
    """Apply what is missing; returns the schema version."""
    real = "DOUBLE PRECISION" if db.backend == "postgresql" else "REAL"
    with db.transaction(conn):
        if db.backend == "postgresql":
            conn.execute(db.sql("SELECT pg_advisory_xact_lock(?)"), (MIGRATION_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     f"name TEXT NOT NULL, applied_at {real} NOT NULL)")
        applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    newest = max(applied, default=0)
    if newest > LATEST:
        raise SchemaTooNew(f"the history database is at schema version {newest}, newer than this Jobline "
                           f"knows ({LATEST}): run a newer Jobline, or point JOBLINE_DATABASE_URL elsewhere")
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        with db.transaction(conn):
            if db.backend == "postgresql":
                conn.execute(db.sql("SELECT pg_advisory_xact_lock(?)"), (MIGRATION_LOCK_KEY,))
            done = conn.execute(db.sql("SELECT 1 FROM schema_migrations WHERE version = ?"),
                                (migration.version,)).fetchone()
            if done:  # another instance applied it while we waited for the lock
                continue
            for statement in migration.sql(db.backend):
                conn.execute(statement)
            conn.execute(db.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
                         (migration.version, migration.name, time.time()))
        log.info("history schema migrated to version %d (%s)", migration.version, migration.name)
    return LATEST
