"""Django admin respects the design lock: a locked study's design and every recorded answer are view-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from listening.models import Assignment, Page, PageResponse, Participant, Rating, Study
from tests.test_analysis_study import rate_everything

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study


@pytest.fixture
def admin_client(client, db):
    """A superuser: if even they cannot change it, nobody can."""
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-123456"))
    return client


@pytest.fixture
def locked_study(generation_study):
    assert rate_everything(generation_study, participants=2) > 0
    generation_study.refresh_from_db()
    assert generation_study.locked_at is not None
    return generation_study


def study_form(study: Study, **changes) -> dict[str, object]:
    """The study's admin change form as it would be posted, with ``changes``; pages inline unchanged."""
    data: dict[str, object] = {
        "name": study.name, "ratings_per_page": study.ratings_per_page,
        "pages_per_participant": study.pages_per_participant, "reservation_s": study.reservation_s,
        "require_full_play": "on" if study.require_full_play else "",
        "pages-TOTAL_FORMS": "0", "pages-INITIAL_FORMS": "0", "pages-MIN_NUM_FORMS": "0", "pages-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def counts() -> dict[str, int]:
    return {"ratings": Rating.objects.count(), "responses": PageResponse.objects.count(),
            "participants": Participant.objects.count(), "assignments": Assignment.objects.count(),
            "pages": Page.objects.count(), "studies": Study.objects.count()}


def test_a_locked_study_cannot_be_changed_or_deleted_in_admin(admin_client, locked_study):
    before = (locked_study.ratings_per_page, locked_study.pages_per_participant, locked_study.require_full_play)
    url = f"/admin/listening/study/{locked_study.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="ratings_per_page"' not in page.content  # shown, not editable
    r = admin_client.post(url, study_form(locked_study, ratings_per_page=1, pages_per_participant=9,
                                          require_full_play="on"))
    assert r.status_code == 403
    assert admin_client.post(f"/admin/listening/study/{locked_study.pk}/delete/", {"post": "yes"}).status_code == 403
    r = admin_client.post("/admin/listening/study/", {"action": "delete_selected", "_selected_action": [locked_study.pk],
                                                      "post": "yes"})
    assert Study.objects.filter(pk=locked_study.pk).exists()
    locked_study.refresh_from_db()
    assert (locked_study.ratings_per_page, locked_study.pages_per_participant, locked_study.require_full_play) == before


def test_an_unlocked_draft_can_still_be_edited(admin_client, world):
    from listening import services

    draft = services.design_generation_study(
        name="draft", db_name="alpha", top_n=1, bottom_n=1, seed=2,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=3))
    r = admin_client.post(f"/admin/listening/study/{draft.pk}/change/", study_form(draft, ratings_per_page=2))
    assert r.status_code == 302, r.content[:2000]
    draft.refresh_from_db()
    assert draft.ratings_per_page == 2


def test_recorded_answers_and_participants_are_view_only(admin_client, locked_study):
    before = counts()
    rating = Rating.objects.filter(participant__study=locked_study).first()
    participant = rating.participant
    response = PageResponse.objects.filter(assignment__participant=participant).first()
    code = participant.completion_code
    cases = [
        (f"/admin/listening/rating/{rating.pk}/change/", {"score": 1 if rating.score != 1 else 5, "aspect": rating.aspect,
                                                          "assignment": rating.assignment_id,
                                                          "participant": participant.pk, "stimulus": rating.stimulus_id}),
        (f"/admin/listening/participant/{participant.pk}/change/", {"completion_code": "PAID", "study": locked_study.pk}),
        (f"/admin/listening/pageresponse/{response.pk}/change/", {"seconds": "999", "heard_before": "on"}),
        (f"/admin/listening/assignment/{response.assignment_id}/change/", {"state": "expired"}),
    ]
    for url, data in cases:
        assert admin_client.get(url).status_code == 200, url  # still visible
        assert admin_client.post(url, data).status_code == 403, url
        assert admin_client.post(url.replace("/change/", "/delete/"), {"post": "yes"}).status_code == 403, url
    assert admin_client.get("/admin/listening/rating/add/").status_code == 403
    admin_client.post("/admin/listening/rating/", {"action": "delete_selected", "post": "yes",
                                                    "_selected_action": [rating.pk]})  # admin's bulk delete
    assert counts() == before
    rating.refresh_from_db()
    participant.refresh_from_db()
    response.refresh_from_db()
    assert participant.completion_code == code and response.seconds != 999
    assert Rating.objects.get(pk=rating.pk).score == rating.score


def test_no_page_can_be_added_to_a_locked_study(admin_client, locked_study):
    pages = Page.objects.filter(study=locked_study).count()
    r = admin_client.post("/admin/listening/page/add/", {"study": locked_study.pk, "index": 999, "kind": "test",
                                                        "stimuli-TOTAL_FORMS": "0", "stimuli-INITIAL_FORMS": "0",
                                                        "stimuli-MIN_NUM_FORMS": "0", "stimuli-MAX_NUM_FORMS": "1000"})
    assert r.status_code == 200 and b"Select a valid choice" in r.content
    assert Page.objects.filter(study=locked_study).count() == pages
    page = Page.objects.filter(study=locked_study).first()
    r = admin_client.post(f"/admin/listening/page/{page.pk}/change/", {"study": locked_study.pk, "index": 999,
                                                                      "kind": "test"})
    assert r.status_code == 403
    page.refresh_from_db()
    assert page.index != 999
