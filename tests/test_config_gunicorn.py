"""Serving that slow clients cannot stop: a real gunicorn with the project's settings, 50 idle connections held open."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.pgtemp import free_port
from tests.live_site import wait_until_serving

REPO = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
CONF = "python:config.gunicorn_conf"
IDLE = 50
PROBES = 9
PROBE_TIMEOUT_S = 3.0


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """gunicorn with the project's settings file (plus ``extra`` flags) on a free port, once it answers."""
    if not GUNICORN.exists():
        pytest.fail(f"gunicorn is not installed in {GUNICORN.parent}")
    port = free_port()
    env = {**os.environ, "MASHLAB_DATA_DIR": str(tmp_path), "MEDIA_ROOT": str(tmp_path / "media"),
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    log = open(tmp_path / f"gunicorn-{port}.log", "wb")
    proc = subprocess.Popen([str(GUNICORN), "-c", CONF, "config.wsgi", "-b", f"127.0.0.1:{port}", *extra],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, wait_until_serving(proc, f"http://127.0.0.1:{port}", tmp_path / f"gunicorn-{port}.log", 60)


def stop(proc: subprocess.Popen) -> None:
    """Quick shutdown (SIGQUIT: no graceful wait on the idle sockets), SIGKILL after 20 s."""
    os.killpg(proc.pid, signal.SIGQUIT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def hold_idle(base: str, n: int) -> list[socket.socket]:
    """``n`` TCP connections to the server that never send a byte."""
    host, port = base.removeprefix("http://").split(":")
    return [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]


def probe(base: str, n: int, *, spacing_s: float) -> list[float | None]:
    """GET the login page ``n`` times, one every ``spacing_s``; each entry the seconds it took, None if unanswered."""
    out: list[float | None] = []
    for _ in range(n):
        t0 = time.monotonic()
        try:
            ok = requests.get(base + "/admin/login/", timeout=PROBE_TIMEOUT_S).status_code == 200
        except requests.RequestException:
            ok = False
        took = time.monotonic() - t0
        out.append(took if ok else None)
        time.sleep(max(0.0, spacing_s - took))
    return out


def test_fifty_idle_connections_leave_the_site_answering(tmp_path):
    proc, base = start(tmp_path)
    idle = []
    try:
        idle = hold_idle(base, IDLE)
        time.sleep(0.5)  # accepted and waiting on the server side
        # spread over 7 s: through gunicorn's 5 s data timeout, after which idle sockets leave their threads
        answered = probe(base, PROBES, spacing_s=0.8)
        print(f"gthread, {IDLE} idle connections: probe seconds {answered}")
        assert all(t is not None for t in answered), answered
        assert max(answered) < 1.5, answered
        assert all(s.fileno() != -1 for s in idle)
    finally:
        for s in idle:
            s.close()
        stop(proc)


def test_the_same_idle_connections_stall_a_sync_server(tmp_path):
    """The control: under gunicorn's sync class (the demo's old setting) the probes go unanswered."""
    proc, base = start(tmp_path, "-k", "sync", "-w", "2", "--threads", "1")  # threads > 1 would mean gthread
    idle = []
    try:
        idle = hold_idle(base, IDLE)
        time.sleep(0.5)
        answered = probe(base, 2, spacing_s=0.0)
        print(f"sync x2, {IDLE} idle connections: probe seconds {answered}")
        assert answered.count(None) >= 1, answered
    finally:
        for s in idle:
            s.close()
        stop(proc)


def test_the_demo_and_the_production_readme_serve_with_these_settings():
    demo = (REPO / "scripts" / "demo.sh").read_text()
    readme = (REPO / "README.md").read_text()
    serve = [line for line in demo.splitlines() if "bin/gunicorn" in line]
    assert serve and all(f"-c {CONF}" in line for line in serve), serve
    production = readme[readme.index("## Production"):]
    production = production[:production.index("\n## ", 3)]
    lines = [line for line in production.splitlines() if "bin/gunicorn" in line]
    assert lines and all(f"-c {CONF}" in line and " -k " not in line for line in lines), lines
