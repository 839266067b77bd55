"""Backups (issue 7 §3): a `dumpdata` of a study with ratings restores into an empty database, every rating intact.

The dump is made exactly as the README's backup procedure says (natural
foreign keys, without the rows `migrate` recreates: content types,
permissions, sessions), gzip-compressed. It is restored in a separate process
into a fresh database given by DATABASE_URL: a second SQLite file, and a
throw-away PostgreSQL cluster when apt's binaries are there. The restored
ratings export (the CSV the analysis reads) and the raw rows of every rating
and page response must equal the originals.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from listening import services
from listening.models import Assignment, PageResponse, Participant, Rating, Study

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study

REPO = Path(__file__).resolve().parent.parent
DUMP_ARGS = ["--natural-foreign", "--natural-primary", "-e", "contenttypes", "-e", "auth.permission",
             "-e", "sessions", "-e", "admin.logentry"]

EXPORT = """
import json
from listening import services
from listening.models import PageResponse, Rating, Study
study = Study.objects.get(name="gen")
print(json.dumps({
    "csv": services.ratings_table(study).to_csv(index=False),
    "ratings": [list(r) for r in Rating.objects.order_by("id").values_list(
        "id", "assignment_id", "participant_id", "stimulus_id", "aspect", "score")],
    "responses": [[r[0], r[1], r[2], r[3], r[4]] for r in PageResponse.objects.order_by("id").values_list(
        "id", "assignment_id", "heard_before", "seconds", "plays")],
    "state": study.state, "locked": study.locked_at is not None,
}))
"""


def rate(study: Study, *, participants: int, seed: int) -> None:
    """`participants` people each answer every page they are given (scores vary by participant and page)."""
    for n in range(participants):
        p = services.start_participant(study, external_id=f"backup{n}")
        services.save_questionnaire(p, listens_daily=n % 2 == 0, produces_music=False)
        p.refresh_from_db()
        page = 0
        while (a := services.current_assignment(p)) is not None:
            score = 1 + (seed + n + page) % 5
            answers = services.PageAnswers(
                scores={pos: {asp: 1 + (score + pos + i) % 5 for i, asp in enumerate(services.ASPECTS)}
                        for pos in (0, 1)},
                heard_before=page % 2 == 1, plays=[n, page])
            assert services.submit_page(p, a.pk, answers)
            page += 1


def export_here(study: Study) -> dict:
    out = io.StringIO()
    code = EXPORT.replace("print(", "out.write(")
    exec(code, {"out": out})  # noqa: S102 - the very same export code the restore side runs
    return json.loads(out.getvalue())


def restore(dump: Path, database_url: str, tmp_path: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "MEDIA_ROOT": str(tmp_path / "media"),
           "MASHLAB_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings",
           "MASHLAB_LOG_LEVEL": "ERROR"}
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=REPO, timeout=300)
    empty = subprocess.run([*manage, "shell", "-c", "from listening.models import Rating; print(Rating.objects.count())"],
                           env=env, check=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert empty.stdout.strip().splitlines()[-1] == "0"
    subprocess.run([*manage, "loaddata", str(dump), "-v", "0"], env=env, check=True, cwd=REPO, timeout=300)
    out = subprocess.run([*manage, "shell", "-c", EXPORT], env=env, check=True, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def dumped(generation_study, tmp_path):
    rate(generation_study, participants=5, seed=3)
    generation_study.refresh_from_db()
    assert Rating.objects.count() == 5 * 3 * 10 and PageResponse.objects.count() == 15
    assert Assignment.objects.filter(state="done").count() == 15 and Participant.objects.count() == 5
    dump = tmp_path / "backup.json.gz"
    call_command("dumpdata", *DUMP_ARGS, "-o", str(dump), verbosity=0)
    assert dump.stat().st_size > 0
    return dump, export_here(generation_study)


def test_a_dump_restores_into_an_empty_sqlite_database_with_every_rating(dumped, tmp_path):
    dump, original = dumped
    restored = restore(dump, f"sqlite:///{tmp_path / 'restored.sqlite3'}", tmp_path)
    assert len(restored["ratings"]) == 150
    assert restored == original


def test_a_dump_restores_into_an_empty_postgresql_database_with_every_rating(dumped, tmp_path):
    from config.pgtemp import PostgresUnavailable, TempPostgres

    dump, original = dumped
    try:
        pg = TempPostgres(max_connections=20)
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with pg:
        restored = restore(dump, pg.url, tmp_path)
    assert len(restored["ratings"]) == 150
    assert restored == original
