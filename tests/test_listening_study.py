"""Studies built from stored scores: stimuli, exports, balanced assignment, storing answers once."""

import io
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command
from django.utils import timezone

from listening import services
from listening.design import DesignError
from listening.export import COLUMNS
from listening.models import (
    Assignment,
    Page,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    StimulusLabel,
    Study,
)
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study


def _answers(score=4, heard="no"):
    return services.parse_page_form(full_answers(score, heard), require_full_play=False)


def _participant(study, n=0):
    p = services.start_participant(study, external_id=f"pid{n}")
    services.save_questionnaire(p, listens_daily=True, produces_music=n % 2 == 0)
    return Participant.objects.get(pk=p.pk)


def test_generation_study_pairs_picks_with_originals_under_opaque_names(generation_study, world, settings):
    study = generation_study
    pages = list(study.pages.all())
    assert 4 <= len(pages) <= 8  # 2 systems x (top 2 + bottom 2), shared picks merged
    originals = {c.pk for c in world.originals.values()}
    for page in pages:
        a, b = page.stimuli.order_by("position")
        assert a.vocal_clip_id == b.vocal_clip_id
        assert (a.candidate_id in originals) != (b.candidate_id in originals)
        for stim in (a, b):
            # a 16-bit FLAC of a 16-bit render holds the very samples
            heard, sr = sf.read(stim.audio_file, dtype="int16")
            rendered, rendered_sr = sf.read(stim.candidate.media("mix_path"), dtype="int16")
            assert stim.audio_path.endswith(".flac") and sr == rendered_sr and np.array_equal(heard, rendered)
            assert stim.token in stim.audio_path and "cand" not in stim.audio_path
    labels = StimulusLabel.objects.filter(stimulus__page__study=study)
    for system in ("amu", "premix"):
        assert labels.filter(system=system, group="top").count() == 2
        assert labels.filter(system=system, group="bottom").count() == 2
    assert labels.filter(system="original").count() == len(pages)


def test_same_seed_gives_the_same_design(world):
    a = services.design_generation_study(name="one", db_name="alpha", top_n=2, bottom_n=1, seed=3)
    b = services.design_generation_study(name="two", db_name="alpha", top_n=2, bottom_n=1, seed=3)
    cols = ["page", "position", "candidate", "system", "group", "rank"]
    assert services.design_table(a)[cols].equals(services.design_table(b)[cols])


def test_retrieval_study_takes_each_systems_top1_from_the_other_db(world):
    study = services.design_retrieval_study(name="ret", query_db="alpha", n_queries=3, n_candidates=4, seed=2)
    stimuli = Stimulus.objects.filter(page__study=study)
    assert sorted(set(stimuli.values_list("query", flat=True))) == [0, 1, 2]
    for q in range(3):
        mine = stimuli.filter(query=q)
        assert len({s.vocal_clip_id for s in mine}) == 1
        systems = set(StimulusLabel.objects.filter(stimulus__in=mine).values_list("system", flat=True))
        assert systems == {"amu", "premix", "original"}
        for stim in mine:
            if stim.candidate.condition == "matched":
                assert stim.candidate.harmonic_clip.db.name == "beta"
    assert study.config["query_vocal_clips"] and study.config["seed"] == 2


def test_design_needs_rendered_candidates_and_known_inputs(db, settings):
    from tests.test_listening_world import build_world

    build_world(settings.MEDIA_ROOT, render=False)
    with pytest.raises(DesignError, match="render candidates first"):
        services.design_generation_study(name="x", db_name="alpha", top_n=1, bottom_n=1)
    assert not Study.objects.exists() and not (settings.MEDIA_ROOT / "studies").exists()
    with pytest.raises(DesignError, match="unknown MashupDB 'nope'"):
        services.design_generation_study(name="x", db_name="nope")
    with pytest.raises(DesignError, match="unknown system"):
        services.design_generation_study(name="x", db_name="alpha", systems=["postmix"])
    with pytest.raises(DesignError, match="need 40"):
        services.design_generation_study(name="x", db_name="alpha")


def test_design_exports_as_json_and_csv(generation_study):
    doc = json.loads(services.design_json(generation_study))
    assert doc["task"] == "generation" and doc["seed"] == 11 and doc["config"]["top_n"] == 2
    assert len(doc["pages"]) == generation_study.pages.count()
    table = services.design_table(generation_study)
    assert set(table["group"]) == {"top", "bottom", "original"}
    assert table["stimulus"].nunique() == 2 * len(doc["pages"])


def test_every_page_gets_exactly_k_ratings_and_nobody_sees_a_page_twice(generation_study):
    study = generation_study
    n_pages = study.pages.count()
    seen_by = {}
    for n in range(40):
        p = _participant(study, n)
        while (a := services.current_assignment(p)) is not None:
            assert a.page_id not in seen_by.setdefault(p.pk, set())
            seen_by[p.pk].add(a.page_id)
            assert services.submit_page(p, a.pk, _answers()) is True
        if not seen_by.get(p.pk):
            break
    done = Assignment.objects.filter(page__study=study, state="done")
    assert done.count() == 3 * n_pages
    assert all(Page.objects.get(pk=pid).assignments.filter(state="done").count() == 3
               for pid in study.pages.values_list("pk", flat=True))
    assert Rating.objects.count() == 3 * n_pages * 2 * 5
    assert max(len(s) for s in seen_by.values()) <= study.pages_per_participant


def test_least_completed_pages_go_first(generation_study):
    study = generation_study
    n_pages = study.pages.count()
    first_round = set()
    for n in range(n_pages):
        p = _participant(study, n)
        first_round.add(services.current_assignment(p).page_id)
    assert len(first_round) == n_pages  # every page held once before any is held twice


def test_a_resubmitted_page_is_stored_once_and_not_overwritten(generation_study):
    p = _participant(generation_study)
    a = services.current_assignment(p)
    assert services.submit_page(p, a.pk, _answers(4)) is True
    assert services.submit_page(p, a.pk, _answers(1)) is False
    assert set(Rating.objects.filter(assignment=a).values_list("score", flat=True)) == {4}
    assert PageResponse.objects.filter(assignment=a).count() == 1
    assert Study.objects.get(pk=generation_study.pk).locked_at is not None


def test_an_expired_reservation_goes_to_someone_else(generation_study):
    study = generation_study
    Study.objects.filter(pk=study.pk).update(ratings_per_page=1)
    study.refresh_from_db()
    slow = _participant(study, 1)
    held = services.current_assignment(slow)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    others = []
    for n in range(2, 2 + study.pages.count()):
        p = _participant(study, n)
        others.append(services.current_assignment(p).page_id)
    assert held.page_id in others  # reclaimed
    assert Assignment.objects.get(pk=held.pk).state == "expired"
    with pytest.raises(services.ParticipantError) as err:
        services.submit_page(slow, held.pk, _answers())
    assert err.value.status == 409 and not Rating.objects.filter(participant=slow).exists()


def test_a_late_participant_keeps_a_reservation_nobody_took(generation_study):
    p = _participant(generation_study)
    held = services.current_assignment(p)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    again = services.current_assignment(p)
    assert again.pk == held.pk and again.expires_at > timezone.now()


def test_redesign_is_refused_once_participants_arrived(generation_study):
    _participant(generation_study)
    with pytest.raises(DesignError, match="locked"):
        services.design_generation_study(name="gen", db_name="alpha", top_n=1, bottom_n=1)


def test_ratings_export_is_the_analysis_long_format(generation_study):
    from analysis.ratings import load_ratings

    p = _participant(generation_study)
    a = services.current_assignment(p)
    services.submit_page(p, a.pk, _answers(5, heard="yes"))
    frame = services.ratings_table(generation_study)
    assert tuple(frame.columns) == COLUMNS
    n_labels = StimulusLabel.objects.filter(stimulus__page=a.page).count()
    assert len(frame) == 5 * n_labels
    assert set(frame["score"]) == {5} and set(frame["heard_before"]) == {"yes"}
    assert set(frame["listens_daily"]) == {"yes"} and set(frame["produces_music"]) == {"yes"}
    assert set(frame["group"]) <= {"top", "bottom", ""}
    # the analysis' own loader accepts it
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    path = generation_study.media_dir / "ratings.csv"
    path.write_text(buf.getvalue())
    loaded = load_ratings(path)
    assert len(loaded) == len(frame)


def test_commands_design_and_export(world, tmp_path):
    out = io.StringIO()
    call_command("design_study", "--name", "cmd", "--task", "generation", "--db", "alpha", "--top", "1",
                 "--bottom", "1", "--seed", "4", "--open", "--export", str(tmp_path), stdout=out)
    assert "study cmd" in out.getvalue() and "open" in out.getvalue()
    assert (tmp_path / "cmd-design.json").is_file() and (tmp_path / "cmd-design.csv").is_file()
    study = Study.objects.get(name="cmd")
    p = _participant(study)
    a = services.current_assignment(p)
    services.submit_page(p, a.pk, _answers(3))
    call_command("export_ratings", "--study", "cmd", "--out", str(tmp_path / "r.csv"), stdout=io.StringIO())
    frame = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert list(frame.columns) == list(COLUMNS) and set(frame["score"]) == {3}
    with pytest.raises(CommandError, match="unknown MashupDB"):
        call_command("design_study", "--name", "bad", "--task", "retrieval", "--db", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown study"):
        call_command("export_ratings", "--study", "nope", stdout=io.StringIO())


def test_demo_studies_are_built_and_opened(world):
    studies = services.build_demo_studies(generation_db="alpha", retrieval_query_db="alpha",
                                          retrieval_candidate_db="beta", top_n=1, bottom_n=1, n_queries=2)
    assert [s.task for s in studies] == ["generation", "retrieval"]
    assert all(s.state == "open" for s in studies)
    again = services.build_demo_studies(generation_db="alpha", top_n=1, bottom_n=1)
    assert again[0].name == "demo-generation" and Study.objects.filter(name="demo-generation").count() == 1
