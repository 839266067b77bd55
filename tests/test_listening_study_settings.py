"""The study settings (completion URL, participant limits, ITU-T P.808 quality rules) on the new-study form and
`manage.py design_study`: defaults shown, values validated and recorded in the study's config."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from listening.models import Study
from listening.quality import QualityRules
from listening.studies import StudySettings

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world

BASE = {"task": "generation", "db": "alpha", "top_n": 1, "bottom_n": 1, "n_queries": 1, "n_candidates": 5,
        "seed": 1, "ratings_per_page": 3, "pages_per_participant": 2, "reservation_s": 1200,
        "audio_format": "flac"}
CHOSEN = {"completion_url": "https://app.prolific.com/submissions/complete?cc={code}", "max_participants": 40,
          "client_limit": 3, "first_activity_s": 90, "gold_every": 10, "speed_share": 0.5,
          "max_speeder_share": 0.3, "straightline_variance": 0.2, "min_answers_for_variance": 12}


@pytest.fixture
def staff(client, world):
    client.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    return client


def recorded(study: Study) -> dict:
    cfg = study.config
    return {**{k: cfg[k] for k in ("completion_url", "max_participants", "client_limit", "first_activity_s")},
            **cfg["quality"]}


def test_the_form_shows_every_setting_with_its_default(staff):
    html = staff.get("/study/new/").content.decode()
    for name in CHOSEN:
        assert f'name="{name}"' in html, name
    assert 'name="gold_every" value="0"' in html and "ITU-T P.808: 10" in html
    assert 'name="straightline_variance" value="0.1"' in html
    assert 'name="client_limit" value="10"' in html and 'name="first_activity_s" value="180"' in html
    assert "Quality control (ITU-T P.808)" in html


def test_the_form_records_the_chosen_settings_in_the_study_config(staff):
    r = staff.post("/study/new/", {**BASE, "name": "crowd", **CHOSEN})
    assert r.status_code == 302, r.content.decode()[-2000:]
    study = Study.objects.get(name="crowd")
    assert recorded(study) == CHOSEN
    rules = StudySettings.of(study)
    assert rules.completion_url == CHOSEN["completion_url"] and rules.quality.gold_every == 10
    assert rules.client_limit == 3 and rules.first_activity_s == 90


def test_the_form_left_empty_records_the_defaults(staff):
    assert staff.post("/study/new/", {**BASE, "name": "plain"}).status_code == 302
    defaults, rules = StudySettings(), QualityRules()
    cfg = Study.objects.get(name="plain").config
    assert cfg["completion_url"] == "" and cfg["client_limit"] == defaults.client_limit
    assert cfg["quality"] == {k: getattr(rules, k) for k in QualityRules.__dataclass_fields__}


@pytest.mark.parametrize("field, value, words", [
    ("gold_every", 1, "at least 2"),
    ("completion_url", "ftp://example.org/x", "must be an http(s) address"),
    ("completion_url", "not a url", "valid URL"),
    ("speed_share", -1, "greater than or equal to 0"),
    ("max_speeder_share", 1.5, "less than or equal to 1"),
    ("client_limit", 0, "greater than or equal to 1"),
    ("first_activity_s", 5, "greater than or equal to 10"),
    ("min_answers_for_variance", 1, "greater than or equal to 2"),
])
def test_the_form_refuses_a_bad_setting_and_stores_nothing(staff, field, value, words):
    r = staff.post("/study/new/", {**BASE, "name": "bad", field: value})
    assert r.status_code == 400 and words in r.content.decode()
    assert not Study.objects.filter(name="bad").exists()


def test_the_command_records_the_chosen_settings(world):
    flags = {"completion_url": "--completion-url", "max_participants": "--max-participants",
             "client_limit": "--client-limit", "first_activity_s": "--first-activity-seconds",
             "gold_every": "--gold-every", "speed_share": "--speed-share",
             "max_speeder_share": "--max-speeder-share", "straightline_variance": "--straightline-variance",
             "min_answers_for_variance": "--min-answers-for-variance"}
    args = [part for name, flag in flags.items() for part in (flag, str(CHOSEN[name]))]
    call_command("design_study", "--name", "cmd", "--task", "generation", "--db", "alpha", "--top", "1",
                 "--bottom", "1", *args, stdout=io.StringIO())
    assert recorded(Study.objects.get(name="cmd")) == CHOSEN


def test_the_command_defaults_are_the_study_settings_defaults(world):
    call_command("design_study", "--name", "cmd0", "--task", "generation", "--db", "alpha", "--top", "1",
                 "--bottom", "1", stdout=io.StringIO())
    study = Study.objects.get(name="cmd0")
    assert StudySettings.of(study) == StudySettings()


@pytest.mark.parametrize("args, words", [
    (["--gold-every", "1"], "N >= 2"),
    (["--completion-url", "prolific please"], "completion URL must be an http(s) address"),
    (["--speed-share", "11"], "0..10"),
    (["--client-limit", "0"], "participant limits"),
    (["--min-answers-for-variance", "1"], "at least 2 answers"),
])
def test_the_command_refuses_a_bad_setting_and_stores_nothing(world, args, words):
    with pytest.raises(CommandError, match=re.escape(words)):
        call_command("design_study", "--name", "badcmd", "--task", "generation", "--db", "alpha", "--top", "1",
                     "--bottom", "1", *args, stdout=io.StringIO())
    assert not Study.objects.filter(name="badcmd").exists()


def test_the_command_help_names_the_defaults(capsys):
    from listening.management.commands.design_study import Command

    parser = Command().create_parser("manage.py", "design_study")
    text = " ".join(parser.format_help().split())
    assert "per this many pages; 0 = none (ITU-T P.808: 10). (default 0)" in text
    assert "(variance of 1..5; ITU-T P.808: 0.1). (default 0.1)" in text
    assert "--completion-url" in text and "{code}" in text
