"""The headphone screening (Woods et al. 2017): the tones as generated, the scoring, and the participant flow with the
screening on (the Django test client): the key stays on the server, a pass goes on, a failure ends politely."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
from django.contrib.auth import get_user_model
from django.test import Client

from listening import flow, headphones, screening, services, tables
from listening.errors import ListeningError, ParticipantError, ScreeningError
from listening.models import Assignment, Participant, Rating, Study
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study

SR = headphones.SAMPLE_RATE


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --------------------------------------------------------------------------- the tones (no Django)


def test_trials_are_seeded_permutations_of_the_three_tones():
    one = headphones.screening_trials(seed=42)
    assert len(one) == headphones.N_TRIALS == 6
    assert one == headphones.screening_trials(seed=42)
    assert all(sorted(t.roles) == sorted(headphones.ROLES) for t in one)
    orders = {tuple(t.roles for t in headphones.screening_trials(seed=s)) for s in range(20)}
    assert len(orders) == 20
    answers = [t.answer for s in range(300) for t in headphones.screening_trials(seed=s)]
    assert all(abs(answers.count(k) / len(answers) - 1 / 3) < 0.05 for k in (1, 2, 3))


def test_a_tone_is_one_second_of_200_hz_with_100_ms_ramps():
    y = headphones.tone()
    assert y.shape == (SR, 2) and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y[:, 0]))
    assert np.fft.rfftfreq(len(y), 1 / SR)[int(np.argmax(spectrum))] == pytest.approx(200.0, abs=1.0)
    assert abs(y[0, 0]) < 1e-6 and abs(y[-1, 0]) < 1e-3
    ramp = int(0.1 * SR)
    assert _rms(y[: ramp // 4, 0]) < 0.2 * _rms(y[ramp:-ramp, 0])
    assert float(np.max(np.abs(y))) == pytest.approx(10 ** (headphones.REFERENCE_DBFS / 20), rel=1e-3)


def test_the_quiet_tone_is_6_db_down_and_the_antiphase_tone_is_negated_in_the_right_channel():
    ref, quiet, anti = headphones.tone(), headphones.tone(level_db=-6.0), headphones.tone(antiphase=True)
    assert 20 * np.log10(_rms(quiet) / _rms(ref)) == pytest.approx(-6.0, abs=0.01)
    np.testing.assert_array_equal(ref[:, 0], ref[:, 1])
    np.testing.assert_array_equal(anti[:, 1], -anti[:, 0])
    # over headphones each ear gets the reference level; where the two channels meet in the air they cancel
    assert _rms(anti[:, 0]) == pytest.approx(_rms(ref[:, 0]))
    assert _rms(anti.sum(axis=1)) < 1e-6 < _rms(quiet.sum(axis=1))


def test_a_trial_plays_its_three_tones_in_order_with_half_second_gaps_as_a_16_bit_wav():
    trial = headphones.Trial(("antiphase", "reference", "quiet"))
    assert trial.answer == 3
    audio = headphones.trial_audio(trial)
    assert len(audio) == int(3 * SR + 2 * 0.5 * SR)
    starts = [0, int(1.5 * SR), int(3.0 * SR)]
    levels = [_rms(audio[s:s + SR, 0]) for s in starts]
    assert levels[0] == pytest.approx(levels[1]) and 20 * np.log10(levels[2] / levels[1]) == pytest.approx(-6, abs=.01)
    assert _rms(audio[SR:int(1.5 * SR)]) == 0.0
    np.testing.assert_array_equal(audio[:SR, 1], -audio[:SR, 0])
    decoded, sr = sf.read(io.BytesIO(headphones.trial_wav(trial)), dtype="float32", always_2d=True)
    info = sf.info(io.BytesIO(headphones.trial_wav(trial)))
    assert sr == SR and info.subtype == "PCM_16" and decoded.shape == audio.shape
    assert float(np.max(np.abs(decoded - audio))) < 1 / 32768 + 1e-6


def test_five_of_six_pass_and_four_fail():
    trials = headphones.screening_trials(seed=3)
    key = [t.answer for t in trials]
    wrong = [k % 3 + 1 for k in key]
    assert headphones.score_screening(trials, key).passed
    assert headphones.score_screening(trials, key[:5] + wrong[5:]).correct == 5
    assert headphones.score_screening(trials, key[:5] + wrong[5:]).passed
    four = headphones.score_screening(trials, key[:4] + wrong[4:])
    assert four.correct == 4 and not four.passed
    with pytest.raises(ScreeningError, match="6 answers expected"):
        headphones.score_screening(trials, key[:5])
    with pytest.raises(ListeningError, match="1, 2 or 3"):
        headphones.score_screening(trials, [0, *key[1:]])


# --------------------------------------------------------------------------- the participant flow


def design_screened_study(name: str = "phones") -> Study:
    """An open study of the world's "alpha" database with the headphone check on (2 pages of 3 ratings each)."""
    study = services.design_generation_study(
        name=name, db_name="alpha", top_n=2, bottom_n=2, seed=11,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=2, headphone_check=True))
    return services.set_state(study, Study.State.OPEN)


@pytest.fixture
def screened_study(world):
    return design_screened_study()


def _consent(client: Client, study: Study, pid: str = "") -> str:
    r = client.post(f"/study/s/{study.public_token}/" + (f"?PROLIFIC_PID={pid}" if pid else ""), {"consent": "on"})
    assert r.status_code == 302
    return r["Location"].rstrip("/").split("/")[-1]


def screening_key(token: str) -> list[int]:
    """The correct answers (1, 2 or 3 per trial) of a participant's screening, from the server side (their seed)."""
    return [t.answer for t in screening.trials(Participant.objects.get(token=token))]


def _answers(values: list[int]) -> dict[str, str]:
    return {f"trial{n}": str(v) for n, v in enumerate(values, start=1)}


def test_the_screening_is_off_by_default_and_recorded_in_the_config(client, generation_study):
    assert services.StudySettings().headphone_check is False
    assert generation_study.config["headphone_check"] is False
    token = _consent(client, generation_study)
    assert "Two questions about you" in client.get(f"/study/p/{token}/").content.decode()


def test_the_form_and_the_command_turn_it_on_in_the_study_config(client, world):
    from django.core.management import call_command

    client.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    assert 'name="headphone_check"' in client.get("/study/new/").content.decode()
    form = {"name": "viaform", "task": "generation", "db": "alpha", "top_n": 1, "bottom_n": 1, "n_queries": 1,
            "n_candidates": 5, "seed": 1, "ratings_per_page": 3, "pages_per_participant": 2,
            "reservation_s": 1200, "audio_format": "flac", "headphone_check": "on"}
    assert client.post("/study/new/", form).status_code == 302
    assert Study.objects.get(name="viaform").config["headphone_check"] is True
    call_command("design_study", "--name", "viacmd", "--task", "generation", "--db", "alpha", "--top", "1",
                 "--bottom", "1", "--headphone-check", stdout=io.StringIO())
    assert services.StudySettings.of(Study.objects.get(name="viacmd")).headphone_check is True


def test_the_screening_comes_first_and_its_page_holds_no_answer_key(client, screened_study):
    tokens = [_consent(Client(), screened_study) for _ in range(4)]
    pages = []
    for token in tokens:
        html = Client().get(f"/study/p/{token}/").content.decode()
        assert "Headphone check" in html and html.count("<audio") == 6
        assert re.findall(r'src="([^"]+\.wav)"', html) == [f"/study/p/{token}/screening/{n}.wav" for n in range(1, 7)]
        for word in ("quiet\"", "antiphase", "reference", str(Participant.objects.get(token=token).seed)):
            assert word not in html
        pages.append(re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.replace(token, "TOKEN")))
    assert len({tuple(screening_key(t)) for t in tokens}) > 1  # different keys ...
    assert len(set(pages)) == 1  # ... and the very same page: nothing in it depends on the key
    with pytest.raises(ParticipantError) as err:
        flow.current_assignment(Participant.objects.get(token=tokens[0]))
    assert err.value.status == 403 and not Assignment.objects.exists()


def test_each_sound_is_the_participants_own_trial_served_as_wav(client, screened_study):
    token = _consent(client, screened_study)
    own = screening.trials(Participant.objects.get(token=token))
    for n in (1, 6):
        r = client.get(f"/study/p/{token}/screening/{n}.wav")
        assert r.status_code == 200 and r["Content-Type"] == "audio/wav" and "no-store" in r["Cache-Control"]
        assert r.content == headphones.trial_wav(own[n - 1])
    assert client.get(f"/study/p/{token}/screening/7.wav").status_code == 404
    assert client.get("/study/p/forged/screening/1.wav").status_code == 404


def test_a_pass_goes_on_to_the_study_and_is_recorded_and_exported(client, screened_study):
    token = _consent(client, screened_study, pid="PASSER")
    key = screening_key(token)
    almost = key[:5] + [key[5] % 3 + 1]
    r = client.post(f"/study/p/{token}/screening/", _answers(almost))
    assert r.status_code == 302
    p = Participant.objects.get(token=token)
    assert p.screening["passed"] is True and p.screening["correct"] == 5 and p.screening["key"] == key
    assert p.screening["seed"] == p.seed and p.screening["answers"] == almost and not p.excluded
    assert "Two questions about you" in client.get(f"/study/p/{token}/").content.decode()
    assert client.get(f"/study/p/{token}/screening/1.wav").status_code == 404  # taken: the sounds are gone
    client.post(f"/study/p/{token}/questionnaire/", {"listens_daily": "yes", "produces_music": "no"})
    assert client.get(f"/study/p/{token}/").status_code == 200
    a = Assignment.objects.get(participant=p, state="reserved")
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers()).status_code == 302
    frame = tables.ratings_table(screened_study)
    assert set(frame["headphones"]) == {"passed"}
    people = tables.participants_table(screened_study)
    assert people.loc[0, "headphones"] == "passed" and people.loc[0, "headphones_correct"] == 5


def test_a_failure_ends_the_session_politely_takes_no_ratings_and_is_recorded_as_an_exclusion(client, screened_study):
    token = _consent(client, screened_study, pid="SPEAKERS")
    key = screening_key(token)
    wrong = [k % 3 + 1 for k in key]
    r = client.post(f"/study/p/{token}/screening/", _answers(wrong))
    assert r.status_code == 302
    p = Participant.objects.get(token=token)
    assert p.screening["passed"] is False and p.screening["correct"] == 0 and p.excluded
    assert p.exclusion_reason == "failed the headphone screening (0 of 6 correct, 5 needed)"
    assert p.finished_at is not None
    html = client.get(f"/study/p/{token}/").content.decode()
    assert 'id="screening-failed"' in html and "no ratings were taken" in html
    assert p.completion_code not in html and "completion-code" not in html
    # no retake, no page, no answers
    assert client.post(f"/study/p/{token}/screening/", _answers(key)).status_code == 302
    assert Participant.objects.get(token=token).screening["correct"] == 0
    with pytest.raises(ParticipantError):
        flow.current_assignment(p)
    assert not Assignment.objects.filter(participant=p).exists() and not Rating.objects.exists()
    people = tables.participants_table(screened_study)
    row = people[people["external_id"] == "SPEAKERS"].iloc[0]
    assert row["headphones"] == "failed" and row["excluded"] == "yes" and row["pages_done"] == 0
    assert "headphone screening" in row["exclusion_reason"]
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    dash = staff.get(f"/study/{screened_study.pk}/").content.decode()
    assert "1 participant(s) failed it" in dash
    csv = staff.get(f"/study/{screened_study.pk}/participants.csv")
    assert csv.status_code == 200 and "SPEAKERS" in csv.content.decode() and "failed" in csv.content.decode()


@pytest.mark.parametrize("data, words", [
    ({"trial1": "1"}, "Sound 2: please say which tone was the quietest."),
    ({**{f"trial{n}": "1" for n in range(1, 7)}, "trial3": "4"}, "Sound 3: please say"),
    ({**{f"trial{n}": "1" for n in range(1, 7)}, "key": "1"}, "Unexpected field"),
])
def test_an_incomplete_or_tampered_screening_is_400_and_scores_nothing(client, screened_study, data, words):
    token = _consent(client, screened_study)
    r = client.post(f"/study/p/{token}/screening/", data)
    assert r.status_code == 400 and words in r.content.decode()
    assert Participant.objects.get(token=token).screening == {}
