"""Launch forms: every field a choice among what exists, so a job never starts on a name that isn't there."""

from __future__ import annotations

from typing import cast

from django import forms

from generation.conditions import Condition
from generation.ingest import SEGMENTS, SEPARATORS
from generation.models import Candidate, Clip, MashupDB
from scoring.amu import VARIANTS as AMU_VARIANTS
from scoring.models import System
from scoring.nets import ARCHITECTURES


def _set_choices(form: forms.Form, name: str, choices: list[tuple[str, str]]) -> None:
    cast(forms.ChoiceField, form.fields[name]).choices = choices  # form.fields is typed dict[str, Field]


def _dbs() -> list[tuple[str, str]]:
    return [(n, n) for n in MashupDB.objects.order_by("name").values_list("name", flat=True)]


def _systems(*archs: str) -> list[tuple[str, str]]:
    """Registered systems (of `archs`, or all) and the AMU rules, which register themselves on first use."""
    qs = System.objects.filter(arch__in=archs) if archs else System.objects.all()
    names = set(qs.values_list("name", flat=True)) | set(AMU_VARIANTS)
    return [(n, n) for n in sorted(names)]


def _clips() -> list[tuple[str, str]]:
    """Every clip as "db / clip name (id)": the id tells apart clips of one song (several per file)."""
    rows = Clip.objects.order_by("db__name", "name", "id").values_list("id", "db__name", "name")
    return [(str(pk), f"{db} / {name} ({pk})") for pk, db, name in rows]


def _conditions() -> list[tuple[str, str]]:
    found = Candidate.objects.order_by("condition").values_list("condition", flat=True).distinct()
    return [("", "all conditions")] + [(c, c) for c in found]


class MashupDBForm(forms.ModelForm):
    """A new MashupDB: its name (a slug, unique) and what it holds."""

    class Meta:
        model = MashupDB
        fields = ["name", "description"]


class RenderForm(forms.Form):
    db = forms.ChoiceField(label="MashupDB")
    condition = forms.ChoiceField(required=False)
    force = forms.BooleanField(required=False, help_text="render again what is already rendered")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "db", _dbs())
        _set_choices(self, "condition", _conditions())


class ScoreForm(RenderForm):
    system = forms.ChoiceField()
    rescore = forms.BooleanField(required=False, help_text="score again what is already scored")
    field_order = ["system", "db", "condition", "rescore"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["force"]
        _set_choices(self, "system", _systems())


class GenerateForm(forms.Form):
    db = forms.ChoiceField(label="MashupDB", help_text="the vocal seeds' MashupDB; candidates are stored in it")
    condition = forms.ChoiceField(choices=[(c.value, c.value) for c in Condition])
    count = forms.IntegerField(min_value=1, max_value=100000, initial=10, help_text="candidates to draw")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="random seed, recorded per candidate")
    accompaniment_db = forms.ChoiceField(required=False, label="accompaniment MashupDB",
                                         help_text="where the harmonic and percussion stems come from "
                                                   "(default: the same MashupDB)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "db", _dbs())
        _set_choices(self, "accompaniment_db", [("", "the same MashupDB")] + _dbs())


class EvaluateForm(forms.Form):
    db = forms.ChoiceField(label="test MashupDB", help_text="its test set is built when absent")
    systems = forms.MultipleChoiceField(help_text="the rows of Table 1")
    per_seed = forms.IntegerField(min_value=1, max_value=1000, initial=5, help_text="matched candidates per vocal seed")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="random seed of the test set")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "db", _dbs())
        _set_choices(self, "systems", _systems())


class IngestForm(forms.Form):
    """Ingest what a MashupDB's upload folder holds (workbench.uploads) with the ingest command's options."""

    db = forms.ChoiceField(label="MashupDB")
    source = forms.ChoiceField(choices=[("uploads", "the MashupDB's uploaded files")])
    separator = forms.ChoiceField(choices=[(s, s) for s in SEPARATORS], initial="spleeter:4stems")
    clip_seconds = forms.FloatField(min_value=1.0, max_value=600.0, initial=30.0, help_text="clip length, seconds")
    segment = forms.ChoiceField(choices=[(s, s) for s in SEGMENTS], initial="start",
                                help_text="start: the first clips of each file; auto: its best windows")
    clips_per_file = forms.IntegerField(min_value=1, max_value=50, initial=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "db", _dbs())

    def clean(self) -> dict:
        from workbench.uploads import stored_uploads

        data = super().clean() or {}
        if data.get("db"):
            paths = stored_uploads(data["db"])
            if not paths:
                raise forms.ValidationError(f"MashupDB {data['db']} has no uploaded files to ingest; upload some first")
            data["paths"] = [str(p) for p in paths]
        return data


class ImportForm(IngestForm):
    """Ingest the audio in a server folder under MASHLAB_IMPORT_ROOTS (workbench.imports)."""

    folder = forms.CharField(max_length=1000, help_text="absolute path of a folder under an import root")
    field_order = ["db", "folder"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["source"]

    def clean(self) -> dict:
        from workbench.imports import audio_in_folder, resolve_import_folder
        from workbench.jobs import WorkbenchError

        data = forms.Form.clean(self) or {}
        if data.get("folder"):
            try:
                data["paths"] = [str(p) for p in audio_in_folder(resolve_import_folder(data["folder"]))]
            except WorkbenchError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data


class TrainForm(forms.Form):
    """Train one system (scoring.services.train) on a MashupDB's non-test candidates."""

    db = forms.ChoiceField(label="MashupDB")
    arch = forms.ChoiceField(choices=[(a, a) for a in ARCHITECTURES], label="architecture")
    lsro = forms.BooleanField(required=False, label="LSRO", help_text="matched candidates get target (0.5, 0.5)")
    width = forms.FloatField(min_value=0.05, max_value=4.0, initial=1.0, help_text="filter multiplier (1 = the paper's)")
    recipe = forms.ChoiceField(label="input", initial="default", choices=[
        ("default", "default"), ("paper", "the paper's 30 s, 22.05 kHz input"), ("pitch_band", "pitch band")])
    epochs = forms.IntegerField(min_value=1, max_value=1000, initial=10)
    patience = forms.IntegerField(min_value=0, max_value=1000, initial=5, required=False,
                                  help_text="stop after this many epochs without a lower validation loss "
                                            "(0 = run every epoch); the best epoch is kept")
    transpose_semitones = forms.FloatField(min_value=0.0, max_value=12.0, initial=0.0, required=False,
                                           label="transpose",
                                           help_text="augment: move all stems of each training example together by "
                                                     "up to this many semitones (0 = off)")
    seed = forms.IntegerField(min_value=0, initial=0)
    name = forms.SlugField(required=False, help_text="system name (default arch, arch_lsro)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "db", _dbs())


class RankForm(forms.Form):
    """Rank every qualifying pair of one vocal clip (scoring.retrieval) and store the top N as matched candidates.

    Only the systems rank_pairs accepts are offered (premix factorised; postmix and AMU one pass per pair).
    """

    system = forms.ChoiceField(help_text="premix ranks fastest (factorised); postmix and AMU score pair by pair")
    vocal = forms.TypedChoiceField(coerce=int, label="vocal clip", help_text="its pairs come from its MashupDB "
                                                                             "unless an accompaniment MashupDB is set")
    top = forms.IntegerField(min_value=1, max_value=100, initial=10, help_text="best pairs to store and show")
    accompaniment_db = forms.ChoiceField(required=False, label="accompaniment MashupDB",
                                         help_text="where the harmonic and percussion stems come from "
                                                   "(default: the vocal's MashupDB)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _set_choices(self, "system", _systems(System.Arch.PREMIX, System.Arch.POSTMIX, System.Arch.AMU))
        _set_choices(self, "vocal", _clips())
        _set_choices(self, "accompaniment_db", [("", "the vocal's MashupDB")] + _dbs())


FORMS = {"ingest": IngestForm, "train": TrainForm, "render": RenderForm, "score": ScoreForm, "generate": GenerateForm,
         "evaluate": EvaluateForm, "rank": RankForm}
