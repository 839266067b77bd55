"""A study's design and ratings as tables and JSON (the Django side of the pure `listening.export`).

Gold pages (quality control) are in the design export with group ``gold``;
their ratings are not in the ratings export (their stimuli carry no system).
"""

from __future__ import annotations

import json

import pandas as pd
from django.db.models import Count

from listening import screening
from listening.export import RatingRow, design_frame, export_group, ratings_frame, yes_no
from listening.models import Assignment, PageResponse, Participant, Rating, Stimulus, StimulusLabel, Study

# --------------------------------------------------------------------------- design export


def design_rows(study: Study) -> list[dict]:
    """One row per (page, position, label); a filler stimulus gets one row with empty system."""
    rows = []
    stimuli = Stimulus.objects.filter(page__study=study).select_related("page").prefetch_related("labels")
    for stim in stimuli.order_by("page__index", "position"):
        labels: list[StimulusLabel | None] = [*stim.labels.all()] or [None]
        for lab in labels:
            rows.append({
                "study": study.name, "task": study.task, "seed": study.seed, "page": stim.page.index,
                "position": stim.position, "query": "" if stim.query is None else stim.query, "stimulus": stim.pk,
                "candidate": stim.candidate_id, "system": lab.system if lab else "",
                "group": lab.group if lab else ("gold" if stim.page.kind == "gold" else "filler"), "rank": lab.rank if lab and lab.rank else "",
                "score": lab.score if lab and lab.score is not None else "",
            })
    return rows


def design_table(study: Study) -> pd.DataFrame:
    return design_frame(design_rows(study))


def design_json(study: Study) -> str:
    """The whole design with its settings and seeds, as JSON text."""
    pages = []
    for page in study.pages.order_by("index").prefetch_related("stimuli__labels"):
        pages.append({
            "index": page.index, "query": page.query,
            "stimuli": [{"stimulus": s.pk, "position": s.position, "candidate": s.candidate_id,
                         "vocal_clip": s.vocal_clip_id,
                         "labels": [{"system": lab.system, "group": lab.group, "rank": lab.rank, "score": lab.score}
                                    for lab in s.labels.all()]}
                        for s in page.stimuli.all()],
        })
    doc = {"study": study.name, "task": study.task, "seed": study.seed, "config": study.config,
           "ratings_per_page": study.ratings_per_page, "pages": pages}
    return json.dumps(doc, indent=2)


# --------------------------------------------------------------------------- ratings export


def ratings_table(study: Study) -> pd.DataFrame:
    """The study's ratings in the long format of issue 6 §1 (see `listening.export`)."""
    labels: dict[int, list[StimulusLabel]] = {}
    for lab in StimulusLabel.objects.filter(stimulus__page__study=study):
        labels.setdefault(lab.stimulus_id, []).append(lab)
    responses = {r.assignment_id: r for r in PageResponse.objects.filter(assignment__page__study=study)}
    rows = []
    ratings = (Rating.objects.filter(stimulus__page__study=study)
               .select_related("participant", "stimulus__page").order_by("id"))
    for rating in ratings:
        response = responses[rating.assignment_id]
        part = rating.participant
        stim = rating.stimulus
        flags = part.flags or {}
        for lab in labels.get(stim.pk, []):
            rows.append(RatingRow(
                task=study.task, page=stim.page.index, participant=str(part.pk), stimulus=f"{stim.pk}/{lab.system}",
                system=lab.system, group=export_group(lab.group), query="" if stim.query is None else str(stim.query),
                aspect=rating.aspect, score=rating.score, heard_before=yes_no(response.heard_before),
                seconds=response.seconds, listens_daily=yes_no(part.listens_daily),
                produces_music=yes_no(part.produces_music), external_id=part.external_id,
                completion_code=part.completion_code,
                plays=int((response.plays or [0, 0])[stim.position]) if len(response.plays or []) > stim.position else 0,
                speeder_page=yes_no((response.flags or {}).get("speeder")),
                gold_failed=int(flags.get("gold_failed", 0)), speeder_pages=int(flags.get("speeder_pages", 0)),
                straightliner=yes_no(flags.get("straightliner")), excluded=yes_no(part.excluded),
                exclusion_reason=part.exclusion_reason, headphones=screening.outcome(part),
            ))
    return ratings_frame(rows)


# --------------------------------------------------------------------------- participants export

PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant", "external_id", "external_study", "external_session", "completion_code", "started_at",
    "finished_at", "pages_done", "headphones", "headphones_correct", "headphones_trials", "excluded",
    "exclusion_reason",
)
"""One row per participant, raters who rated nothing included (a failed headphone screening ends a session before
its first rating, so the ratings export cannot show it): payments and exclusions can be checked from this alone."""


def participants_table(study: Study) -> pd.DataFrame:
    """Every participant of the study with their completion code, pages done, screening and exclusion."""
    rows = []
    done = dict(Assignment.objects.filter(page__study=study, state=Assignment.State.DONE)
                .values("participant").annotate(n=Count("id")).values_list("participant", "n"))
    for part in Participant.objects.filter(study=study).order_by("id"):
        check = part.screening or {}
        rows.append({
            "participant": str(part.pk), "external_id": part.external_id, "external_study": part.external_study,
            "external_session": part.external_session, "completion_code": part.completion_code,
            "started_at": part.started_at.isoformat(),
            "finished_at": part.finished_at.isoformat() if part.finished_at else "",
            "pages_done": int(done.get(part.pk, 0)), "headphones": screening.outcome(part),
            "headphones_correct": check.get("correct", ""), "headphones_trials": check.get("trials", ""),
            "excluded": yes_no(part.excluded), "exclusion_reason": part.exclusion_reason,
        })
    return pd.DataFrame.from_records(rows, columns=list(PARTICIPANT_COLUMNS))
