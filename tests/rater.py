"""A participant in chromium (Playwright): consent, the questionnaire, and a page rated through the accessible
names only (tests/test_listening_browser.py, tests/test_workbench_browser_pipeline.py)."""

from __future__ import annotations

from typing import Any

ASPECTS = ("harmony", "rhythm", "timbre", "innovation", "overall")


def begin(page: Any, entry_url: str) -> None:
    """Open a study's participant link, consent, start, and answer the questionnaire (daily listener, no
    producer); the first page is next (with the headphone check on, `consent`, the check, then `questionnaire`)."""
    consent(page, entry_url)
    questionnaire(page)


def consent(page: Any, entry_url: str) -> None:
    """Open a study's participant link, consent and start: the headphone check (when on) or the questionnaire."""
    page.goto(entry_url)
    page.get_by_label("I have read the information above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()


def questionnaire(page: Any) -> None:
    """Answer the questionnaire (daily listener, no producer) and go on."""
    page.get_by_role("radiogroup", name="Do you listen to music every day?").get_by_label("Yes").check()
    page.get_by_role("radiogroup", name="Have you ever produced music (recorded, mixed or composed)?") \
        .get_by_label("No").check()
    page.get_by_role("button", name="Continue").click()


def fill(page: Any, scores: dict[str, int], heard: str) -> None:
    """Rate through the accessible names only: radiogroup 'Clip n · Aspect', radio 'k word'."""
    for field, value in scores.items():
        clip, aspect = field.split("_")
        group = page.get_by_role("radiogroup", name=f"Clip {clip[-1]} · {aspect.capitalize()}")
        group.get_by_role("radio", name=str(value), exact=False).first.check()
    page.get_by_role("radiogroup", name="Have you heard this vocal melody before?").get_by_label(
        heard.capitalize()).check()


def scores_for(page_number: int, salt: int = 0) -> dict[str, int]:
    """Answers for every field of a page (clip1_harmony ... clip2_overall), varied by page and salt."""
    return {f"clip{n}_{a}": 1 + (page_number + n + i + salt) % 5 for n in (1, 2) for i, a in enumerate(ASPECTS)}
