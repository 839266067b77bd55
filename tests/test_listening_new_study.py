"""The new-study form (and `manage.py design_study`): lists to pick from, refusals in the form's own terms, a name
in use refused, a draft never lost to a failed redesign, and a note when fewer queries or candidates exist."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from listening import studies
from listening.design import generation_design
from listening.errors import DesignError, ListeningError
from listening.models import Study

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world

FORM = {"task": "generation", "db": "alpha", "top_n": 1, "bottom_n": 1, "n_queries": 30, "n_candidates": 180,
        "seed": 1, "ratings_per_page": 3, "pages_per_participant": 2, "reservation_s": 1200,
        "audio_format": "flac"}


@pytest.fixture
def staff(client, world):
    client.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    return client


def _draft(name: str = "taken", **kwargs) -> Study:
    return studies.design_generation_study(name=name, db_name="alpha", top_n=1, bottom_n=1, seed=2, **kwargs)


def _files(study: Study) -> list[Path]:
    return sorted(study.media_dir.rglob("*.*"))


def test_the_form_offers_the_stored_mashupdbs_and_systems_as_lists(staff):
    html = staff.get("/study/new/").content.decode()
    assert re.search(r'<select name="db"[^>]*>', html) and '<option value="alpha">alpha</option>' in html
    assert '<option value="beta">beta</option>' in html
    assert re.search(r'<select name="candidate_db"[^>]*>', html) and "any other MashupDB" in html
    assert re.search(r'type="checkbox" name="systems" value="amu"', html)
    assert re.search(r'type="checkbox" name="systems" value="premix"', html)


def test_the_chosen_systems_are_the_studys_systems(staff):
    r = staff.post("/study/new/", {**FORM, "name": "only-amu", "systems": ["amu"]})
    assert r.status_code == 302, r.content.decode()[-1500:]
    assert Study.objects.get(name="only-amu").config["systems"] == ["amu"]


@pytest.mark.parametrize("field, value, words", [
    ("db", "nope", "There is no MashupDB named nope."),
    ("systems", "nope", "There is no system named nope."),
    ("candidate_db", "nope", "There is no MashupDB named nope."),
])
def test_a_name_not_in_the_lists_is_refused_and_stores_nothing(staff, field, value, words):
    r = staff.post("/study/new/", {**FORM, "name": "bad", field: value})
    assert r.status_code == 400 and words in r.content.decode()
    assert not Study.objects.filter(name="bad").exists()


def test_too_few_candidates_speaks_of_the_forms_top_n_and_bottom_n_not_of_flags(staff):
    r = staff.post("/study/new/", {**FORM, "name": "big", "top_n": 20, "bottom_n": 20})
    html = r.content.decode()
    assert r.status_code == 400 and "need 40" in html and "top N / bottom N" in html
    assert "--top" not in html and "--bottom" not in html
    # shown beside the Top N field, not only at the top of the form
    assert re.search(r'id="id_top_n_error"|<ul class="errorlist" id="id_top_n_error"', html), html[-3000:]
    assert not Study.objects.filter(name="big").exists()


def test_no_refusal_of_the_pure_design_names_a_command_line_flag():
    with pytest.raises(DesignError) as err:
        generation_design(scores={"a": [(1, 0.5)]}, original_of={1: 9}, top_n=1, bottom_n=1, seed=0)
    assert "--" not in err.value.message and "top N" in err.value.message and err.value.field == "top_n"
    assert isinstance(err.value, ListeningError)


def test_a_retrieval_candidate_db_equal_to_the_query_db_is_refused_beside_its_field(staff):
    r = staff.post("/study/new/", {**FORM, "name": "same", "task": "retrieval", "candidate_db": "alpha"})
    assert r.status_code == 400 and "must differ from the query MashupDB" in r.content.decode()
    assert not Study.objects.filter(name="same").exists()


def test_a_name_in_use_is_refused_and_the_study_that_has_it_is_unchanged(staff):
    draft = _draft(study_settings=studies.StudySettings(pages_per_participant=7))
    before = (draft.pk, draft.public_token, draft.config, draft.pages.count(), _files(draft))
    r = staff.post("/study/new/", {**FORM, "name": "taken", "top_n": 2, "bottom_n": 2})
    assert r.status_code == 400 and "A study named &#x27;taken&#x27; already exists" in r.content.decode()
    again = Study.objects.get(name="taken")
    assert (again.pk, again.public_token, again.config, again.pages.count(), _files(again)) == before


def test_a_failed_redesign_leaves_the_draft_as_it_was(world):
    draft = _draft()
    before = (draft.pk, draft.public_token, draft.config, draft.pages.count(), _files(draft))
    # the plan is valid, but one stimulus cannot be written: the failure comes after the old draft's delete
    broken = world.gen_matched[0]
    (Path(broken.media("mix_path"))).write_bytes(b"not audio at all")
    with pytest.raises(DesignError, match=f"candidate {broken.pk}"):
        studies.design_generation_study(name="taken", db_name="alpha", top_n=6, bottom_n=6, seed=3,
                                        replace_draft=True)
    again = Study.objects.get(name="taken")
    assert (again.pk, again.public_token, again.config, again.pages.count(), _files(again)) == before
    assert all(p.is_file() for p in before[-1])
    assert Study.objects.count() == 1


def test_a_redesign_on_purpose_replaces_the_draft_and_keeps_its_link(world):
    draft = _draft()
    old_files = _files(draft)
    new = studies.design_generation_study(name="taken", db_name="alpha", top_n=2, bottom_n=2, seed=3,
                                          replace_draft=True)
    assert new.pk != draft.pk and new.public_token == draft.public_token and new.config["top_n"] == 2
    assert Study.objects.filter(name="taken").count() == 1
    assert not any(p.exists() for p in old_files) and _files(new)


def test_asking_for_more_queries_and_candidates_than_exist_is_said_on_the_study_page(staff):
    r = staff.post("/study/new/", {**FORM, "name": "ret", "task": "retrieval", "candidate_db": "beta"})
    assert r.status_code == 302, r.content.decode()[-1500:]
    study = Study.objects.get(name="ret")
    notes = study.config["notes"]
    assert any("Asked for 30 queries (Q)" in n and "the study uses 4" in n for n in notes), notes
    assert any("Asked for 180 candidates per query (C)" in n and "4 of 4 queries have fewer (5)" in n
               for n in notes), notes
    html = staff.get(r["Location"]).content.decode()
    assert 'id="design-notes"' in html and "Asked for 30 queries (Q)" in html


def test_asking_for_what_exists_makes_no_note(world):
    study = studies.design_retrieval_study(name="fits", query_db="alpha", candidate_db="beta", n_queries=4,
                                           n_candidates=5)
    assert study.config["notes"] == []


def test_the_command_refuses_a_name_in_use_says_its_notes_and_replaces_a_draft_only_when_told(world):
    _draft()
    with pytest.raises(CommandError, match="already exists"):
        call_command("design_study", "--name", "taken", "--task", "generation", "--db", "alpha", "--top", "1",
                     "--bottom", "1", stdout=io.StringIO())
    out = io.StringIO()
    call_command("design_study", "--name", "taken", "--task", "retrieval", "--db", "alpha", "--candidate-db", "beta",
                 "--replace-draft", stdout=out)
    assert Study.objects.get(name="taken").task == "retrieval"
    assert "note: Asked for 30 queries (Q)" in out.getvalue()
    with pytest.raises(CommandError) as err:
        call_command("design_study", "--name", "big", "--task", "generation", "--db", "alpha", "--top", "20",
                     "--bottom", "20", stdout=io.StringIO())
    assert "top N / bottom N" in str(err.value) and "--top" not in str(err.value)
