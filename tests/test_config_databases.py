"""DATABASE_URL and MEDIA_ROOT are all it takes to run a second, separate instance (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.pgtemp import PostgresUnavailable, TempPostgres

ROOT = Path(__file__).resolve().parent.parent


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def build_instance(env: dict, few_songs) -> list[dict]:
    song = few_songs[2]
    for step in (("migrate", "--noinput"),
                 ("ingest", str(song.stem_paths["vocals"].parent), "--db", "second", "--separator", "stems",
                  "--jobs", "1", "--no-progress")):
        r = manage(env, *step)
        assert r.returncode == 0, r.stdout + r.stderr
    r = manage(env, "clips", "--db", "second", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_second_sqlite_instance_is_separate(tmp_path, few_songs):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'two.sqlite3'}", "MEDIA_ROOT": str(tmp_path / "media2")}
    clips = build_instance(env, few_songs)
    assert len(clips) == 1
    assert all(Path(p).is_relative_to(tmp_path / "media2") for p in clips[0]["stems"].values())
    other = manage({"DATABASE_URL": f"sqlite:///{tmp_path / 'three.sqlite3'}",
                    "MEDIA_ROOT": str(tmp_path / "media3")}, "clips", "--db", "second")
    assert other.returncode != 0  # a third instance has neither its tables nor that DB
    assert not (tmp_path / "media3").exists()


def test_postgresql_via_database_url(tmp_path, few_songs):
    try:
        pg = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc} (scripts/test.sh installs it)")
    try:
        env = {"DATABASE_URL": pg.url, "MEDIA_ROOT": str(tmp_path / "pgmedia")}
        r = manage(env, "shell", "-c", "from django.db import connection; print(connection.vendor)")
        assert r.stdout.strip().splitlines()[-1] == "postgresql", r.stdout + r.stderr
        clips = build_instance(env, few_songs)
        assert [c["key"] for c in clips] == [few_songs[2].key.label]
    finally:
        pg.stop()
