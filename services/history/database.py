"""The two database backends behind one small interface: SQLite (embedded) and PostgreSQL.

Why psycopg 3 for PostgreSQL (and not asyncpg): the store's code is synchronous and runs in its
own threads, as SQLite's must (the `sqlite3` module blocks); psycopg 3 offers the same DB-API shape
as `sqlite3` (cursors, `executemany`, transactions), so one code path serves both backends with
only the placeholders and a few JSON expressions told apart here. Its `executemany` pipelines the
statements (one round trip per batch, not per row), and the binary wheel needs no libpq on the
machine. asyncpg is faster per query but would need a second, asynchronous copy of every query.

SQL in this package is written with `?` placeholders; `Database.sql()` turns them into `%s` for
psycopg. No statement here contains a literal `?` or `%`: values always travel as parameters.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SQLITE_MIN_VERSION = (3, 38, 0)  # the `->` JSON operator


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    rowcount: int


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def close(self) -> None: ...


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached (PostgreSQL down, the file unreadable)."""


@dataclass
class Database:
    """Where the history lives, and how to talk to it. `url` is `sqlite:///<path>` or
    `postgresql://…`. Each thread opens its own connection (`connect()`)."""

    url: str
    backend: str = field(init=False)
    path: Path | None = field(init=False, default=None)
    _lock_file: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.url.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
        elif self.url.startswith("sqlite:///"):
            self.backend = "sqlite"
            self.path = Path(self.url[len("sqlite:///"):])
            if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
                raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old: the history store needs "
                                   f"{'.'.join(map(str, SQLITE_MIN_VERSION))} or newer (its JSON operators)")
        else:
            raise ValueError(f"JOBLINE_DATABASE_URL must be sqlite:///<path> or postgresql://…, got {self.redacted_url!r}")

    @property
    def redacted_url(self) -> str:
        """The URL without its password, for logs."""
        scheme, sep, rest = self.url.partition("://")
        if "@" in rest:
            credentials, _, host = rest.rpartition("@")
            user = credentials.split(":", 1)[0]
            return f"{scheme}{sep}{user}:***@{host}"
        return self.url

    # --- SQL dialect ---------------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.backend == "postgresql" else text

    def json_field(self, column: str) -> str:
        """An expression for a JSON value inside `column` at a path given as one parameter, equal
        to `json_value()` of the same value: `state -> '$.params.height'` (SQLite: the value's
        JSON text) or `state #> '{params,height}'` (PostgreSQL: jsonb)."""
        return f"{column} #> ?::text[]" if self.backend == "postgresql" else f"{column} -> ?"

    def json_path(self, path: Sequence[str]) -> Any:
        return list(path) if self.backend == "postgresql" else "$." + ".".join(f'"{p}"' for p in path)

    def json_value(self) -> str:
        """The parameter a `json_field` is compared with (the JSON text of the wanted value)."""
        return "?::jsonb" if self.backend == "postgresql" else "json(?)"

    def insert_rows(self, conn: Any, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]],
                    tail: str = "") -> None:
        """`INSERT INTO <table> (<columns>) … <tail>` for many rows. `columns` are (name, PostgreSQL
        type); a `jsonb` column is sent as text and cast. SQLite: `executemany` (a C loop over one
        prepared statement). PostgreSQL: one statement whose parameters are one array per column,
        unnested into rows — a statement per row costs the server a parse-bind-execute each, even
        pipelined (measured: 2-3x the whole batch's time)."""
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        if self.backend != "postgresql":
            conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({','.join('?' * len(columns))}) {tail}", rows)
            return
        arrays = ", ".join(f"%b::{'text' if kind == 'jsonb' else kind}[]" for _, kind in columns)
        selected = ", ".join(f"{name}::jsonb" if kind == "jsonb" else name for name, kind in columns)
        # %b: binary parameters (the text format escapes every array element with a regex, in Python).
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {selected} FROM unnest({arrays}) AS u({names}) {tail}",
                     [list(column) for column in zip(*rows, strict=True)])

    def executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (psycopg pipelines them: one round trip, not one per row)."""
        if self.backend == "postgresql":
            with conn.cursor() as cursor:
                cursor.executemany(sql, rows)
        else:
            conn.executemany(sql, rows)

    # --- connections ---------------------------------------------------------------------
    def connect(self) -> Any:
        try:
            if self.backend == "postgresql":
                import psycopg

                return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA foreign_keys=OFF")
            return db
        except Exception as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(f"{self.redacted_url}: {exc}") from exc
            raise

    @contextlib.contextmanager
    def transaction(self, conn: Any, *, write: bool = True, snapshot: bool = False) -> Iterator[Any]:
        """A transaction on `conn`; `snapshot`: every read in it sees one moment (SQLite's read
        transactions always do; PostgreSQL needs REPEATABLE READ)."""
        if self.backend == "postgresql":
            begin = "BEGIN ISOLATION LEVEL REPEATABLE READ" if snapshot else "BEGIN"
        else:
            begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        conn.execute(begin)
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- one writer --------------------------------------------------------------------
    def try_writer_lock(self, conn: Any) -> bool:
        """Take the store's writer lock without waiting: one history service writes, others stand
        by (answering queries) and take over when it goes away. PostgreSQL: a session advisory
        lock (released when the writer's connection ends, also by a crash); SQLite: an exclusive
        `flock` on `<db>.writer` (released when the process ends)."""
        if self.backend == "postgresql":
            return bool(conn.execute(self.sql("SELECT pg_try_advisory_lock(?)"), (WRITER_LOCK_KEY,)).fetchone()[0])
        assert self.path is not None
        if self._lock_file is None:
            self._lock_file = open(f"{self.path}.writer", "a+")  # noqa: SIM115 (held for as long as the lock)
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release_writer_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


WRITER_LOCK_KEY = 0x6A6F626C696E65  # "jobline"


def _is_connection_error(exc: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError)


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'history.sqlite3'}"


class ThreadConnections:
    """One connection per thread (a thread pool's workers each keep theirs), closed together."""

    def __init__(self, database: Database):
        self._database = database
        self._local = threading.local()
        self._all: list[Any] = []
        self._guard = threading.Lock()

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._database.connect()
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def discard(self) -> None:
        """Drop this thread's connection (after an error that may have broken it)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._guard, contextlib.suppress(ValueError):
                self._all.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()

    def close_all(self) -> None:
        with self._guard:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

