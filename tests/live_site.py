"""A whole mashlab instance as separate processes, as in production: one SQLite file and MEDIA_ROOT, driven
through `manage.py`, served by gunicorn, its jobs run by `manage.py db_worker` (tests/test_workbench_jobs.py,
tests/test_workbench_browser_pipeline.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import pytest
import requests

from config.pgtemp import free_port

REPO = Path(__file__).resolve().parent.parent


class Site:
    """One mashlab instance on its own SQLite file and MEDIA_ROOT, driven through manage.py."""

    songs: Path  # set by the fixture that builds the site's world

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "mashlab.sqlite3"
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{self.db}", "MEDIA_ROOT": str(root / "media"),
                    "MASHLAB_DATA_DIR": str(root), "DJANGO_SETTINGS_MODULE": "config.settings",
                    "MASHLAB_LOG_LEVEL": "ERROR", "MASHLAB_JOB_HEARTBEAT_S": "1", "MASHLAB_JOB_STALE_S": "60",
                    "MODEL_PATH": os.environ.get("MODEL_PATH", str(REPO / "data" / "pretrained_models"))}
        self.env.pop("DJANGO_DEBUG", None)

    def manage(self, *args: str, timeout: float = 300, stderr: bool = False) -> str:
        out = subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=self.env, cwd=REPO,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"manage.py {' '.join(args[:2])} failed:\n{out.stderr[-3000:]}"
        return out.stderr if stderr else out.stdout

    def shell(self, code: str) -> object:
        """Run `code` in `manage.py shell`; it prints one JSON value, returned here."""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def launch(self, stage: str, arguments: dict) -> int:
        return cast(int, self.shell(f"from workbench.jobs import launch; print(launch({stage!r}, {arguments!r}).pk)"))

    def worker(self, *args: str) -> subprocess.Popen:
        """`manage.py db_worker` in its own process group (stop it with `stop`); its output goes to a log file."""
        log = open(self.root / f"worker-{time.monotonic_ns()}.log", "wb")
        return subprocess.Popen([sys.executable, str(REPO / "manage.py"), "db_worker", "--interval", "0.2", *args],
                                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run_worker_until_idle(self, timeout: float = 300) -> None:
        """`db_worker --batch`: runs every queued task, then exits."""
        self.manage("db_worker", "--batch", "--interval", "0", timeout=timeout)

    def server(self, *, threads: int = 8) -> tuple[subprocess.Popen, str]:
        """gunicorn (config.gunicorn_conf) on a free local port, answering once this returns: (process, base URL).
        Its output goes to gunicorn.log; stop it with `stop`."""
        port = free_port()
        log = open(self.root / "gunicorn.log", "wb")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "python:config.gunicorn_conf",
                                 "config.wsgi", "-b", f"127.0.0.1:{port}", "--workers", "1", "--threads", str(threads)],
                                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return proc, wait_until_serving(proc, f"http://127.0.0.1:{port}", self.root / "gunicorn.log", 120)

    def log(self, name: str, chars: int = 3000) -> str:
        """The end of a log file in the site's folder ('' when absent)."""
        path = self.root / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def job(self, pk: int) -> dict:
        with sqlite3.connect(self.db, timeout=30) as con:
            con.row_factory = sqlite3.Row
            return dict(con.execute("select * from workbench_job where id = ?", (pk,)).fetchone())

    def scalar(self, sql: str, *params) -> object:
        with sqlite3.connect(self.db, timeout=30) as con:
            return con.execute(sql, params).fetchone()[0]

    def wait_for(self, pk: int, predicate, *, timeout: float = 180, proc: subprocess.Popen | None = None) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            row = self.job(pk)
            if predicate(row):
                return row
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"the worker exited ({proc.returncode}) with job {pk} {row['state']}")
            time.sleep(0.1)
        pytest.fail(f"job {pk} did not get there in {timeout} s: {self.job(pk)}")


def wait_until_serving(proc: subprocess.Popen, base: str, log: Path, timeout_s: float) -> str:
    """`base` once the server answers its login page; the test fails with its log if it exits or stays silent."""
    end = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            requests.get(base + "/admin/login/", timeout=30)
            return base
        except requests.RequestException:
            if time.monotonic() > end:
                stop(proc)
                pytest.fail(f"gunicorn did not answer within {timeout_s:g} s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)


def stop(proc: subprocess.Popen | None) -> None:
    """End a process started by Site.worker or Site.server, and its children (its own process group)."""
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group too: a worker's Spleeter child outlives a dead worker otherwise
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue
