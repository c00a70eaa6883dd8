"""SQLite (WAL) store of log lines, keyed by log stream sequence so a redelivery adds nothing."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jobline.contract.events import LogQuery, LogRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_lines (
    seq      INTEGER PRIMARY KEY,  -- sequence in the log stream
    ts       REAL NOT NULL,
    level    TEXT NOT NULL,
    message  TEXT NOT NULL,
    job_id   TEXT,
    attempt  INTEGER,
    service  TEXT,
    instance TEXT,
    logger   TEXT,
    job_seq  INTEGER  -- a job line's sequence in the job stream (from Nats-Stream-Source)
);
CREATE INDEX IF NOT EXISTS log_lines_by_job ON log_lines (job_id, seq) WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS log_lines_by_service ON log_lines (service, seq) WHERE service IS NOT NULL;
"""

MAX_PAGE = 5000

Row = tuple[int, float, str, str, str | None, int | None, str | None, str | None, str | None, int | None]


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class LogStore:
    """One writer thread and one reader thread, each with its own connection (WAL lets them overlap)."""

    def __init__(self, path: Path):
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="logsink-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="logsink-read")
        self._wdb = self._writer.submit(self._open_writer).result()
        self._rdb = self._reader.submit(_open, path).result()

    def _open_writer(self) -> sqlite3.Connection:
        db = _open(self.path)
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(log_lines)")}
        if "job_seq" not in columns:  # a database from before job_seq was kept
            db.execute("ALTER TABLE log_lines ADD COLUMN job_seq INTEGER")
        return db

    def close(self) -> None:
        self._writer.submit(self._wdb.close).result()
        self._reader.submit(self._rdb.close).result()
        self._writer.shutdown()
        self._reader.shutdown()

    # --- writing ---------------------------------------------------------------------------
    def write(self, rows: list[Row]) -> int:
        """Blocking; call through `writer`. Returns how many rows were new."""
        db = self._wdb
        db.execute("BEGIN")
        try:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO log_lines "
                           "(seq, ts, level, message, job_id, attempt, service, instance, logger, job_seq) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return db.total_changes - before

    @property
    def writer(self) -> ThreadPoolExecutor:
        return self._writer

    @property
    def reader(self) -> ThreadPoolExecutor:
        return self._reader

    # --- reading ---------------------------------------------------------------------------
    def query(self, q: LogQuery) -> list[LogRow]:
        """Blocking; call through `reader`."""
        where = ["seq > ?"]
        args: list[Any] = [q.after_seq]
        if q.job_id is not None:
            where.append("job_id = ?")
            args.append(q.job_id)
        if q.service is not None:
            where.append("service = ?")
            args.append(q.service)
        args.append(min(max(q.limit, 1), MAX_PAGE))
        order = "DESC" if q.tail else "ASC"
        cur = self._rdb.execute(
            "SELECT seq, ts, level, message, job_id, service, logger, attempt, job_seq FROM log_lines "
            f"WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
            args,
        )
        rows = [
            LogRow(seq=seq, ts=ts, level=level, message=message, job_id=job_id, service=service, logger=logger,
                   attempt=attempt, job_seq=job_seq)
            for seq, ts, level, message, job_id, service, logger, attempt, job_seq in cur.fetchall()
        ]
        return rows[::-1] if q.tail else rows

    def last_seq(self) -> int:
        (value,) = self._rdb.execute("SELECT COALESCE(MAX(seq), 0) FROM log_lines").fetchone()
        return int(value)
