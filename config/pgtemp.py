"""A throw-away PostgreSQL cluster on loopback, for tests and benchmarks (apt's postgresql binaries).

    with TempPostgres() as pg:
        os.environ["DATABASE_URL"] = pg.url

initdb runs into a temporary folder as the `postgres` user when we are root
(PostgreSQL refuses to run as root); the server listens on 127.0.0.1 only, on
a free port, and is stopped and deleted on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries: install apt's postgresql."""


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable("PostgreSQL binaries not found: apt-get install postgresql")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    def __init__(self, *, dbname: str = "mashlab", max_connections: int = 200) -> None:
        self.bindir = _bindir()
        self.dbname = dbname
        self.max_connections = max_connections
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mashlab-pg-"))
        self.datadir = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://{self.user or os.environ.get('USER', 'postgres')}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self) -> "TempPostgres":
        if self.user:
            shutil.chown(self.root, self.user)
        self._run(self.bindir / "initdb", "-D", self.datadir, "-A", "trust", "-U", self.user or "postgres",
                  "--no-sync", "-E", "UTF8")
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.root / "log", "-w", "-t", "60", "-o",
                  f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections={self.max_connections}",
                  "start")
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                  self.user or "postgres", self.dbname)
        return self

    def restart(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.root / "log", "-w", "-m", "fast", "restart")

    def stop(self) -> None:
        if self.datadir.exists():
            self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-w", "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        try:
            return self.start()
        except Exception:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_port(port: int, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
