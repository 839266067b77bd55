"""Launch forms: every field a choice among what exists, so a job never starts on a name that isn't there."""

from __future__ import annotations

from django import forms

from generation.models import Candidate, MashupDB
from scoring.models import System


def _dbs() -> list[tuple[str, str]]:
    return [(n, n) for n in MashupDB.objects.order_by("name").values_list("name", flat=True)]


def _conditions() -> list[tuple[str, str]]:
    found = Candidate.objects.order_by("condition").values_list("condition", flat=True).distinct()
    return [("", "all conditions")] + [(c, c) for c in found]


class RenderForm(forms.Form):
    db = forms.ChoiceField(label="MashupDB")
    condition = forms.ChoiceField(required=False)
    force = forms.BooleanField(required=False, help_text="render again what is already rendered")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["db"].choices = _dbs()
        self.fields["condition"].choices = _conditions()


class ScoreForm(RenderForm):
    system = forms.ChoiceField()
    rescore = forms.BooleanField(required=False, help_text="score again what is already scored")
    field_order = ["system", "db", "condition", "rescore"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["force"]
        names = set(System.objects.values_list("name", flat=True)) | {"amu", "amu_rhythm"}
        self.fields["system"].choices = [(n, n) for n in sorted(names)]


FORMS = {"render": RenderForm, "score": ScoreForm}
