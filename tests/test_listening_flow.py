"""Reservations, admission and submits (listening.flow): abuse resistance, saved answers, quality flags, blind bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from config.pgtemp import PostgresUnavailable, TempPostgres
from listening import flow, services
from listening.delivery import HEADER_BYTES
from listening.models import Answer, Assignment, PageResponse, Participant, Rating, Study
from listening.quality import QualityRules
from tests.test_listening_http import _current, _start
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study
ROOT = Path(__file__).resolve().parent.parent


def _counts():
    return (Participant.objects.count(), Assignment.objects.count(), Answer.objects.count(), Rating.objects.count(),
            PageResponse.objects.count())


def _open(name, **settings_kw):
    kw = {"ratings_per_page": 3, "pages_per_participant": 3, **settings_kw}
    study = services.design_generation_study(name=name, db_name="alpha", top_n=2, bottom_n=2, seed=11,
                                             study_settings=services.StudySettings(**kw))
    return services.set_state(study, Study.State.OPEN)


# --------------------------------------------------------------------------- admission


def test_the_same_prolific_pid_returns_to_its_own_participant(generation_study):
    first = Client()
    token = _start(first, generation_study, pid="5f1e2d3c4b5a69788796a5b4")
    for _ in range(5):  # another browser, the same PID: back to the same participant, nobody new
        r = Client().get(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=5f1e2d3c4b5a69788796a5b4")
        assert r.status_code == 302 and r["Location"].endswith(f"/study/p/{token}/")
    assert Participant.objects.count() == 1
    assert flow.start_participant(generation_study, external_id="5f1e2d3c4b5a69788796a5b4").token == token


def test_prolific_study_and_session_ids_are_captured(client, generation_study):
    r = client.get(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=P1&STUDY_ID=S1&SESSION_ID=X1")
    assert 'value="S1"' in r.content.decode() and 'value="X1"' in r.content.decode()
    r = client.post(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=P1&STUDY_ID=S1&SESSION_ID=X1",
                    {"consent": "on"})
    p = Participant.objects.get()
    assert (p.external_id, p.external_study, p.external_session) == ("P1", "S1", "X1")


@pytest.mark.parametrize("pid", ["a\x00b", "x" * 129, "<script>", "a b"])
def test_a_malformed_external_id_is_400_and_creates_nobody(client, generation_study, pid):
    r = client.post(f"/study/s/{generation_study.public_token}/", {"consent": "on", "pid": pid})
    assert r.status_code == 400 and not Participant.objects.exists()


def test_participant_creation_is_rate_limited_per_client(world):
    study = _open("limited", client_limit=3)
    made = [flow.start_participant(study, client_ip="203.0.113.7") for _ in range(3)]
    assert len({p.pk for p in made}) == 3
    assert "203.0.113.7" not in json.dumps([p.client_key for p in made])  # a keyed hash, not the address
    before = _counts()
    with pytest.raises(flow.ParticipantError) as err:
        flow.start_participant(study, client_ip="203.0.113.7")
    assert err.value.status == 429 and err.value.retry_after_s
    assert _counts() == before
    assert flow.start_participant(study, client_ip="198.51.100.1")  # another client is not affected
    r = Client(REMOTE_ADDR="203.0.113.7").post(f"/study/s/{study.public_token}/", {"consent": "on"})
    assert r.status_code == 429 and r["Retry-After"]


def test_a_study_admits_at_most_its_cap(world):
    study = _open("capped", max_participants=2)
    flow.start_participant(study)
    flow.start_participant(study)
    with pytest.raises(flow.ParticipantError) as err:
        flow.start_participant(study)
    assert err.value.status == 403 and "all the participants" in err.value.message
    assert Participant.objects.filter(study=study).count() == 2


def test_a_30_mb_consent_post_is_refused_before_it_is_read(client, generation_study):
    big = b"x" * (30 * 1024 * 1024)
    r = client.generic("POST", f"/study/s/{generation_study.public_token}/", big,
                       content_type="multipart/form-data; boundary=zzz")
    assert r.status_code == 413 and not Participant.objects.exists()
    r = client.generic("POST", f"/study/s/{generation_study.public_token}/", b'{"consent": "on"}',
                       content_type="application/json")
    assert r.status_code == 415 and not Participant.objects.exists()


# --------------------------------------------------------------------------- reservations


def test_nothing_free_now_is_come_back_not_finished(world):
    study = _open("tiny", ratings_per_page=1, pages_per_participant=10)
    n_pages = study.pages.filter(kind="test").count()
    bots = [flow.start_participant(study, external_id=f"bot{i}") for i in range(n_pages)]
    for bot in bots:
        services.save_questionnaire(bot, listens_daily=True, produces_music=True)
        assert flow.current_assignment(bot) is not None
    real = flow.start_participant(study, external_id="real")
    with pytest.raises(flow.ComeBackLater) as err:
        flow.current_assignment(real)
    assert "come back" in err.value.message and err.value.retry_after_s >= 30
    assert Participant.objects.get(pk=real.pk).finished_at is None
    # the bots never play or answer: their first lease (first_activity_s) runs out, the real rater gets a page
    assert study.config["first_activity_s"] == 180
    Assignment.objects.filter(participant__in=bots).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert flow.current_assignment(real) is not None


def test_a_new_reservation_lasts_the_first_lease_and_activity_extends_it(client, started_pair):
    token, a = started_pair
    study = a.page.study
    lease = (a.expires_at - a.reserved_at).total_seconds()
    assert lease == pytest.approx(180, abs=1)
    assert client.post(f"/study/p/{token}/page/{a.pk}/answer/", {"field": "clip1_overall", "value": "4"}).status_code \
        == 204
    a.refresh_from_db()
    assert (a.expires_at - a.active_at).total_seconds() == pytest.approx(study.reservation_s, abs=1)


@pytest.fixture
def started_pair(client, generation_study):
    token = _start(client, generation_study, pid="PAIR")
    assert client.get(f"/study/p/{token}/").status_code == 200
    return token, _current(token)


def test_a_participant_never_gets_more_than_their_quota_or_two_pages_at_once(client, generation_study):
    token = _start(client, generation_study, pid="Q")
    for _ in range(3):
        client.get(f"/study/p/{token}/")
        client.get(f"/study/p/{token}/")
        assert Assignment.objects.filter(participant__token=token, state="reserved").count() == 1
        client.post(f"/study/p/{token}/page/{_current(token).pk}/", full_answers())
    assert "completion code" in client.get(f"/study/p/{token}/").content.decode()
    assert Assignment.objects.filter(participant__token=token, state="done").count() == 3
    assert not Assignment.objects.filter(participant__token=token, state="reserved").exists()


RACE = textwrap.dedent('''
    import json, threading, django
    from pathlib import Path
    django.setup()
    from django.conf import settings
    from django.db import connection
    from tests.test_listening_world import build_world
    from listening import flow, services
    from listening.models import Assignment, Participant, Study
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(name="race", db_name="alpha", top_n=2, bottom_n=2, seed=11,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=2, client_limit=1000))
    services.set_state(study, Study.State.OPEN)
    p = flow.start_participant(study, external_id="racer")
    errors, pages = [], []
    def hit(fn):
        try:
            fn()
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()
    def load():
        a = flow.current_assignment(Participant.objects.select_related("study").get(pk=p.pk))
        pages.append(a and a.pk)
    worst = 0
    for round_ in range(3):
        threads = [threading.Thread(target=hit, args=(load,)) for _ in range(10)]
        [t.start() for t in threads]; [t.join() for t in threads]
        worst = max(worst, Assignment.objects.filter(participant=p, state="reserved").count())
        live = Assignment.objects.filter(participant=p, state="reserved").first()
        if live:
            flow.submit_page(p, live.pk, flow.PageAnswers(scores={0: {a: 3 for a in flow.ASPECTS},
                                                                   1: {a: 4 for a in flow.ASPECTS}},
                                                           heard_before=False))
    same = [flow.start_participant(study, external_id="twin") for _ in range(1)]
    def arrive():
        same.append(flow.start_participant(Study.objects.get(pk=study.pk), external_id="twin"))
    threads = [threading.Thread(target=hit, args=(arrive,)) for _ in range(8)]
    [t.start() for t in threads]; [t.join() for t in threads]
    print(json.dumps({"vendor": connection.vendor, "worst_live": worst, "errors": errors,
                      "done": Assignment.objects.filter(participant=p, state="done").count(),
                      "twins": len({x.pk for x in same}),
                      "participants": Participant.objects.filter(study=study).count()}))
''')


def _race(env: dict) -> dict:
    for args in (["manage.py", "migrate", "--noinput"], ["-c", RACE]):
        r = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE":
                           "config.settings", **env}, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check_race(result: dict, vendor: str) -> None:
    assert result["vendor"] == vendor
    assert result["errors"] == []
    assert result["worst_live"] == 1  # 10 parallel page loads: one live reservation, never two
    assert result["done"] == 2  # the quota of 2 pages, not 3
    assert result["twins"] == 1 and result["participants"] == 2  # 9 arrivals with one PID: one participant


def test_parallel_page_loads_hold_one_reservation_on_sqlite(tmp_path):
    _check_race(_race({"DATABASE_URL": f"sqlite:///{tmp_path / 'race.sqlite3'}", "MEDIA_ROOT": str(tmp_path / "m")}),
                "sqlite")


def test_parallel_page_loads_hold_one_reservation_on_postgresql(tmp_path):
    try:
        pg = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc} (scripts/test.sh installs it)")
    try:
        _check_race(_race({"DATABASE_URL": pg.url, "MEDIA_ROOT": str(tmp_path / "m")}), "postgresql")
    finally:
        pg.stop()


# --------------------------------------------------------------------------- answers as they are given


def test_an_answer_is_saved_when_clicked_and_restored_on_reload(client, started_pair):
    token, a = started_pair
    url = f"/study/p/{token}/page/{a.pk}/answer/"
    for _ in range(2):  # the same click twice: one row
        assert client.post(url, {"field": "clip2_rhythm", "value": "2"}).status_code == 204
    assert client.post(url, {"field": "clip2_rhythm", "value": "5"}).status_code == 204  # changed mind
    assert client.post(url, {"field": "heard_before", "value": "yes"}).status_code == 204
    assert Answer.objects.filter(assignment=a).count() == 1 and Answer.objects.get().score == 5
    html = Client().get(f"/study/p/{token}/").content.decode()  # another device: the answers come back
    assert 'name="clip2_rhythm" value="5" required checked' in html
    assert 'name="heard_before" value="yes" required checked' in html
    assert not Rating.objects.exists()  # saved, not yet committed


@pytest.mark.parametrize("data, status", [
    ({"field": "clip2_rhythm", "value": "6"}, 400), ({"field": "clip2_rhythm", "value": "0"}, 400),
    ({"field": "clip2_rhythm", "value": "3.5"}, 400), ({"field": "clip3_rhythm", "value": "3"}, 400),
    ({"field": "clip1_system", "value": "3"}, 400), ({"field": "heard_before", "value": "maybe"}, 400),
    ({"field": "clip1_overall", "value": "3", "extra": "1"}, 400), ({}, 400),
])
def test_a_tampered_answer_is_4xx_and_changes_nothing(client, started_pair, data, status):
    token, a = started_pair
    before = _counts()
    r = client.post(f"/study/p/{token}/page/{a.pk}/answer/", data)
    assert r.status_code == status and "error" in r.json()
    assert _counts() == before


def test_answers_to_a_page_not_held_are_refused(client, started_pair, generation_study):
    token, a = started_pair
    other = Client()
    other_token = _start(other, generation_study, pid="OTHER")
    before = _counts()
    assert other.post(f"/study/p/{other_token}/page/{a.pk}/answer/",
                      {"field": "clip1_overall", "value": "3"}).status_code == 404
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers(2)).status_code == 302
    before = _counts()
    r = client.post(f"/study/p/{token}/page/{a.pk}/answer/", {"field": "clip1_overall", "value": "5"})
    assert r.status_code == 409 and _counts() == before  # a submitted page cannot change
    assert set(Rating.objects.values_list("score", flat=True)) == {2}


def test_an_answer_without_the_csrf_token_is_403(generation_study):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"/study/s/{generation_study.public_token}/")
    csrf = page.cookies["csrftoken"].value
    r = browser.post(f"/study/s/{generation_study.public_token}/", {"consent": "on", "csrfmiddlewaretoken": csrf})
    token = r["Location"].rstrip("/").split("/")[-1]
    browser.post(f"/study/p/{token}/questionnaire/", {"listens_daily": "no", "produces_music": "no",
                                                      "csrfmiddlewaretoken": csrf})
    browser.get(f"/study/p/{token}/")
    a = _current(token)
    url = f"/study/p/{token}/page/{a.pk}/answer/"
    assert browser.post(url, {"field": "clip1_overall", "value": "3"}).status_code == 403
    assert not Answer.objects.exists()
    assert browser.post(url, {"field": "clip1_overall", "value": "3"}, HTTP_X_CSRFTOKEN=csrf).status_code == 204


# --------------------------------------------------------------------------- blind bytes, order, vocals


def test_both_clips_of_a_page_have_one_length_and_the_original_differs_on_every_page(client, world):
    study = _open("blind", ratings_per_page=3, pages_per_participant=8)
    original_digests, sizes_equal = [], []
    for n in range(3):
        c = Client()
        token = _start(c, study, pid=f"B{n}")
        for _ in range(2):
            c.get(f"/study/p/{token}/")
            a = _current(token)
            bodies = {}
            for clip in (1, 2):
                r = c.get(f"/study/p/{token}/clip/{a.media_key}/{clip}")
                bodies[flow.stimulus_at(a, clip)] = b"".join(r.streaming_content)
            sizes_equal.append(len(bodies[0]) == len(bodies[1]))
            for stim in a.page.stimuli.select_related("candidate"):
                if stim.candidate.condition == "original":
                    original_digests.append(hashlib.sha256(bodies[stim.position][HEADER_BYTES:]).hexdigest())
            c.post(f"/study/p/{token}/page/{a.pk}/", full_answers())
    assert all(sizes_equal) and len(sizes_equal) == 6
    assert len(set(original_digests)) == len(original_digests) == 6  # never the same bytes twice


def test_the_original_is_shown_left_and_right_in_turn_per_participant(world):
    study = _open("sides", ratings_per_page=3, pages_per_participant=4)
    for n in range(3):
        p = flow.start_participant(study, external_id=f"S{n}")
        sides = []
        while (a := flow.current_assignment(p)) is not None:
            original = next(s.position for s in a.page.stimuli.select_related("candidate")
                            if s.candidate.condition == "original")
            sides.append(original ^ int(a.swapped))  # 0 = shown left
            flow.submit_page(p, a.pk, services.parse_page_form(full_answers()))
        assert len(sides) == 4 and sides.count(0) == 2 and all(x != y for x, y in zip(sides, sides[1:]))


def test_no_participant_gets_two_pages_of_one_vocal_when_the_design_allows_it(world):
    study = _open("vocals", ratings_per_page=3, pages_per_participant=4)
    vocals_in_design = len(set(study.pages.values_list("stimuli__vocal_clip_id", flat=True)))
    assert vocals_in_design == 4
    for n in range(3):
        p = flow.start_participant(study, external_id=f"V{n}")
        heard = []
        while (a := flow.current_assignment(p)) is not None:
            heard.append(a.page.stimuli.first().vocal_clip_id)
            flow.submit_page(p, a.pk, services.parse_page_form(full_answers()))
        assert len(heard) == len(set(heard)) == 4


# --------------------------------------------------------------------------- quality control


def test_gold_pages_speeders_and_straight_lining_are_flagged_and_exported(world):
    rules = QualityRules(gold_every=2, speed_share=1.0)
    study = _open("qc", ratings_per_page=3, pages_per_participant=2, quality=rules)
    assert study.config["quality"]["gold_every"] == 2 and study.pages.filter(kind="gold").count() >= 2

    def run(pid, *, gold_right: bool, vary: bool, slow: bool):
        p = flow.start_participant(study, external_id=pid)
        services.save_questionnaire(p, listens_daily=True, produces_music=False)
        kinds = []
        while (a := flow.current_assignment(p)) is not None:
            kinds.append(a.page.kind)
            if slow:  # the server clock: the page was first shown 10 s ago (clips: 2 x 1 s)
                Assignment.objects.filter(pk=a.pk).update(shown_at=timezone.now() - timedelta(seconds=10))
            scores = {}
            for clip in (1, 2):
                stim = a.page.stimuli.select_related("candidate").get(position=flow.stimulus_at(a, clip))
                good = stim.candidate.condition == "original"
                if a.page.kind == "gold":  # the original must win on harmony and rhythm
                    base = (5 if good else 1) if gold_right else (1 if good else 5)
                    scores[clip - 1] = {asp: base for asp in flow.ASPECTS}
                else:  # varied answers, or 3 everywhere (straight-lining)
                    scores[clip - 1] = {asp: 1 + (i + clip + len(kinds)) % 5 if vary else 3
                                        for i, asp in enumerate(flow.ASPECTS)}
            flow.submit_page(p, a.pk, flow.PageAnswers(scores=scores, heard_before=False))
        return Participant.objects.get(pk=p.pk), kinds

    honest, kinds = run("honest", gold_right=True, vary=True, slow=True)
    assert kinds == ["test", "gold", "test"]
    assert honest.flags["gold_failed"] == 0 and honest.flags["speeder_pages"] == 0 and not honest.excluded
    careless, _ = run("careless", gold_right=False, vary=True, slow=True)
    assert careless.flags["gold_failed"] == 1 and careless.excluded and "gold" in careless.exclusion_reason
    speeder, _ = run("speeder", gold_right=True, vary=True, slow=False)
    assert speeder.flags["speeder_pages"] == 3 and speeder.excluded and "faster" in speeder.exclusion_reason
    flat, _ = run("flat", gold_right=True, vary=False, slow=True)
    assert flat.flags["straightliner"] is True and flat.excluded and "straight-lining" in flat.exclusion_reason

    table = services.ratings_table(study)
    assert not table["stimulus"].str.contains("gold").any()  # gold ratings are not in the analysis' rows
    by_pid = table.groupby("external_id")
    assert set(by_pid["excluded"].first()) == {"yes", "no"}
    assert by_pid["excluded"].first()["honest"] == "no" and by_pid["excluded"].first()["speeder"] == "yes"
    assert by_pid["completion_code"].nunique().max() == 1 and table["completion_code"].nunique() == 4
    assert by_pid["speeder_page"].first()["speeder"] == "yes"
    assert (table.groupby("external_id")["seconds"].min()["honest"]) >= 10
