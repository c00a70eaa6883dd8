"""The history database as the service uses it: one writer thread, a pool of reader threads.

Database calls block, so they run in threads, each with its own connection: the writer applies the
job stream batch by batch (`Projection`) and prunes; readers answer queries in parallel (SQLite's
WAL and PostgreSQL's MVCC let them read while the writer writes).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from jobline.runtime.stream_writer import Delivered

from . import migrations, retention
from .database import Database, DatabaseUnavailable, ThreadConnections
from .projection import Projection

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying as it is (the database away, locked, or the connection lost), as
    opposed to one a given message causes every time."""
    if isinstance(exc, (DatabaseUnavailable, sqlite3.OperationalError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


class HistoryStore:
    def __init__(self, database: Database, *, readers: int = 4, state_cache: int = 20_000):
        self.db = database
        self.projection = Projection(database, state_cache)
        self.schema_version = 0
        self.is_writer = False
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="history-write")
        self._readers = ThreadPoolExecutor(max(readers, 1), thread_name_prefix="history-read")
        self._write_conns = ThreadConnections(database)
        self._read_conns = ThreadConnections(database)

    async def _in(self, pool: ThreadPoolExecutor, conns: ThreadConnections, work: Callable[[Any], T]) -> T:
        def run() -> T:
            conn = conns.get()
            try:
                return work(conn)
            except BaseException as exc:
                if is_transient(exc):
                    conns.discard()  # reconnect next time
                    if conns is self._write_conns and self.db.backend == "postgresql":
                        # The writer lock was the old connection's: it is gone with it.
                        self.is_writer = False
                raise

        return await asyncio.get_running_loop().run_in_executor(pool, run)

    # --- start ----------------------------------------------------------------------------
    async def migrate(self) -> int:
        self.schema_version = await self._in(self._writer, self._write_conns, lambda conn: migrations.migrate(self.db, conn))
        return self.schema_version

    async def become_writer(self) -> bool:
        """Take the writer lock if it is free; then load how far the stream is applied."""
        if self.is_writer:
            return True
        if not await self._in(self._writer, self._write_conns, self.db.try_writer_lock):
            return False
        self.projection.forget()  # another writer may have moved on meanwhile
        await self._in(self._writer, self._write_conns, self.projection.open)
        self.is_writer = True
        return True

    # --- writing --------------------------------------------------------------------------
    async def write(self, batch: Sequence[Delivered]) -> int:
        return await self._in(self._writer, self._write_conns, lambda conn: self.projection.apply_batch(conn, batch))

    async def skip(self, seq: int) -> None:
        """Mark one message applied without applying it (it fails every time; logged by the caller)."""
        def run(conn: Any) -> None:
            with self.db.transaction(conn):
                conn.execute(self.db.sql("UPDATE projection SET applied_seq = ? WHERE name = 'jobs' AND applied_seq < ?"),
                             (seq, seq))
            self.projection.applied_seq = max(self.projection.applied_seq, seq)

        await self._in(self._writer, self._write_conns, run)

    async def prune(self, max_age_s: float) -> tuple[int, bool]:
        return await self._in(self._writer, self._write_conns, lambda conn: retention.prune(self.db, conn, max_age_s))

    @property
    def applied_seq(self) -> int:
        return self.projection.applied_seq

    # --- reading --------------------------------------------------------------------------
    async def read(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._in(self._readers, self._read_conns, lambda conn: query(self.db, conn, *args, **kwargs))

    # --- stop -----------------------------------------------------------------------------
    def close(self) -> None:
        self._writer.submit(self._write_conns.close_all).result()
        self._writer.shutdown()
        self._readers.shutdown(wait=True)
        self._read_conns.close_all()
        self.db.release_writer_lock()
