"""Forms of the participant flow and the experimenter's design page (page ratings: services.parse_page_form)."""

from __future__ import annotations

from django import forms

from listening.stimuli import STIMULUS_FORMATS

YES_NO = [("yes", "Yes"), ("no", "No")]


class ConsentForm(forms.Form):
    consent = forms.BooleanField(
        required=True, label="I have read the information above and agree to take part.",
        error_messages={"required": "Please tick the box to agree before starting."},
    )


class QuestionnaireForm(forms.Form):
    listens_daily = forms.ChoiceField(choices=YES_NO, widget=forms.RadioSelect,
                                      label="Do you listen to music every day?")
    produces_music = forms.ChoiceField(choices=YES_NO, widget=forms.RadioSelect,
                                       label="Have you ever produced music (recorded, mixed or composed)?")


class DesignForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="A short name for the study (letters, digits, dashes).")
    task = forms.ChoiceField(choices=[("generation", "generation"), ("retrieval", "retrieval")])
    db = forms.CharField(max_length=100, label="MashupDB (generation) / query MashupDB (retrieval)")
    candidate_db = forms.CharField(max_length=100, required=False, label="Candidate MashupDB (retrieval, optional)")
    systems = forms.CharField(max_length=500, required=False, help_text="Comma-separated; empty = every system.")
    top_n = forms.IntegerField(min_value=0, initial=20, label="Top N (generation)")
    bottom_n = forms.IntegerField(min_value=0, initial=20, label="Bottom N (generation)")
    n_queries = forms.IntegerField(min_value=1, initial=30, label="Queries Q (retrieval)")
    n_candidates = forms.IntegerField(min_value=1, initial=180, label="Candidates per query C (retrieval)")
    seed = forms.IntegerField(min_value=0, initial=0)
    ratings_per_page = forms.IntegerField(min_value=1, max_value=50, initial=3)
    pages_per_participant = forms.IntegerField(min_value=1, max_value=1000, initial=10)
    reservation_minutes = forms.FloatField(min_value=0.1, initial=20)
    require_full_play = forms.BooleanField(required=False, label="Unlock a clip's questions only after it played to the end")
    audio_format = forms.ChoiceField(choices=list(STIMULUS_FORMATS.items()), initial="flac",
                                     label="Audio participants download")
