"""A throwaway PostgreSQL server (Debian's `postgresql` package) in a temporary folder, on a free
port: `initdb` + `pg_ctl`, as the benchmark starts `redis-server`. `make test` installs the package
when it is missing. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


class PostgresMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresMissing("PostgreSQL is not installed: `apt-get install postgresql` (make test does)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    """A running server; `stop()` and `start()` take it away and bring it back on the same port."""

    def __init__(self, bindir: Path, folder: Path, port: int):
        self.bindir = bindir
        self.folder = folder
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "db"), *args]), check=True,
                       capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    folder = Path(tempfile.mkdtemp(prefix="jobline-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir, folder, _free_port())
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(folder / "db"), "-U", "postgres", "--auth=trust",
                                  "-E", "UTF8", "--no-sync", "--locale=C"]), check=True, capture_output=True)
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop()
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")
        log = folder / "server.log"
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {detail}\n{server_log}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """A fresh, empty database on the server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name
