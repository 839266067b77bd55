"""Compatibility front of the listening app: the names other apps and commands import from here.

The code lives along its seams:

* `listening.studies`: design a study from stored scores, open and close it;
* `listening.tables`: its design and ratings as tables and JSON;
* `listening.flow`: participants, page reservations, saved answers, page submits;
* `listening.forms`: the forms, and the parser of a rated page.
"""

from listening.export import ASPECTS
from listening.flow import (
    PageAnswers,
    ParticipantError,
    current_assignment,
    progress,
    require_open,
    save_questionnaire,
    start_participant,
    submit_page,
)
from listening.forms import parse_page_form
from listening.studies import (
    StudySettings,
    build_demo_studies,
    design_generation_study,
    design_retrieval_study,
    design_study,
    set_state,
)
from listening.tables import design_json, design_rows, design_table, ratings_table

__all__ = [
    "ASPECTS", "PageAnswers", "ParticipantError", "StudySettings", "build_demo_studies", "current_assignment",
    "design_generation_study", "design_json", "design_retrieval_study", "design_rows", "design_study",
    "design_table", "parse_page_form", "progress", "ratings_table", "require_open", "save_questionnaire",
    "set_state", "start_participant", "submit_page",
]
