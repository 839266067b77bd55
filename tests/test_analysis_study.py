"""A study's ratings go straight into the analysis: the analyst page and `analyse --study`."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from listening import services
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study


def rate_everything(study, *, participants: int = 12, first: int = 0, speed_rule: bool = False) -> int:
    """Participants p<first>.. rate until no page is left; each gives scores that vary by participant.

    Scripted raters answer a page in milliseconds, so the study's speed rule
    (listening.quality) would flag every page and exclude every rater: unless
    ``speed_rule``, it is switched off in the study's config before the first
    rating, as an experimenter can.
    """
    if not speed_rule and study.locked_at is None:
        quality = dict((study.config or {}).get("quality") or {})
        study.config = {**(study.config or {}), "quality": {**quality, "speed_share": 0.0}}
        study.save(update_fields=["config"])
    stored = 0
    for n in range(first, first + participants):
        p = services.start_participant(study, external_id=f"p{n}")
        services.save_questionnaire(p, listens_daily=n % 2 == 0, produces_music=n % 3 == 0)
        while (a := services.current_assignment(p)) is not None:
            answers = services.parse_page_form(full_answers(score=1 + (n + a.page_id) % 5), require_full_play=False)
            stored += services.submit_page(p, a.pk, answers)
    return stored


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_user("analyst", password="x-123456-y", is_staff=True)
    client.force_login(user)
    return client


def test_analyst_page_shows_tables_figure_and_downloads(generation_study, staff):
    assert staff.get(f"/analysis/study/{generation_study.pk}/").context["error"].startswith("No ratings yet")
    assert rate_everything(generation_study) > 0
    r = staff.get(f"/analysis/study/{generation_study.pk}/")
    assert r.status_code == 200 and not r.context["error"], r.context["error"]
    systems = {row["system"] for row in r.context["mos"]}
    assert "original" in systems and len(systems) >= 3
    assert {"mos.json", "subjects.json", "significance.json", "figure4.html", "manifest.json"} <= set(r.context["files"])
    fig = staff.get(f"/analysis/study/{generation_study.pk}/files/figure4.html")
    assert fig.status_code == 200 and b"plotly" in b"".join(fig.streaming_content)
    assert staff.get(f"/analysis/study/{generation_study.pk}/files/..%2Fsecret").status_code == 404


def test_analysis_pages_need_a_staff_login(client, generation_study):
    r = client.get(f"/analysis/study/{generation_study.pk}/")
    assert r.status_code == 302 and "login" in r["Location"]


def test_analyse_command_reads_a_study(generation_study, tmp_path):
    with pytest.raises(CommandError, match="no ratings yet"):
        call_command("analyse", "--study", str(generation_study.pk), "--out", str(tmp_path / "a"))
    rate_everything(generation_study)
    call_command("analyse", "--study", str(generation_study.pk), "--out", str(tmp_path / "b"), "--format", "json",
                 stdout=io.StringIO(), stderr=io.StringIO())
    subjects = json.loads((tmp_path / "b" / "subjects.json").read_text())
    assert subjects[0]["task"] == "generation" and subjects[0]["n_subjects"] >= 3
    with pytest.raises(CommandError, match="no study with id 999"):
        call_command("analyse", "--study", "999", "--out", str(tmp_path / "c"))
