"""MashupDB storage: collections, clips with their analysis, and stems.

Audio lives under MEDIA_ROOT; rows hold paths relative to it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from generation.conditions import ROLES, Condition
from generation.keys import Key


class MashupDB(models.Model):
    """A named collection of clips (the paper's MashupDB)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "MashupDB"
        verbose_name_plural = "MashupDBs"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Clip(models.Model):
    """One excerpt of a source recording (a ~30 s preview, or an annotated verse/chorus)."""

    class AnalysisSource(models.TextChoices):
        ESTIMATED = "estimated"
        ANNOTATED = "annotated"

    db = models.ForeignKey(MashupDB, on_delete=models.CASCADE, related_name="clips")
    name = models.CharField(max_length=255)
    source = models.CharField(max_length=1024, help_text="Path of the source recording as given to ingest.")
    source_sha256 = models.CharField(max_length=64, db_index=True)
    start_s = models.FloatField()
    duration_s = models.FloatField()
    sample_rate = models.PositiveIntegerField()
    audio_path = models.CharField(max_length=1024, help_text="Clip audio, relative to MEDIA_ROOT.")
    segment_label = models.CharField(max_length=64, blank=True)
    segment_method = models.CharField(
        max_length=16, default="start",
        help_text="How start_s was chosen: start (the file's start), auto (ingest --segment auto: the best "
                  "window by vocal activity, steady beat and loudness), annotated (a Harmonix segment).")
    segment_score = models.FloatField(null=True, blank=True,
                                      help_text="The auto choice's score (generation.segments), else empty.")
    vocal_level_db = models.FloatField(
        null=True, blank=True,
        help_text="RMS of the vocal stem relative to the clip's mix in dB, measured when candidates are first "
                  "drawn; a clip more than 30 dB below (instrumental music) is no vocal seed. Empty: not measured.")
    gain_db = models.FloatField(default=0.0, help_text="Level change from the source in dB (<= 0): a source "
                                "decoded beyond full scale is scaled to fit integer FLAC storage.")
    key_label = models.CharField(max_length=16)
    tempo_bpm = models.FloatField()
    beats = models.JSONField(default=list, help_text="Beat times in seconds from the clip start.")
    downbeats = models.JSONField(default=list, help_text="Downbeat times in seconds from the clip start.")
    beats_per_bar = models.PositiveSmallIntegerField()
    analysis_source = models.CharField(max_length=16, choices=AnalysisSource.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["db", "id"]
        constraints = [
            models.UniqueConstraint(fields=["db", "source_sha256", "start_s"], name="unique_clip_per_source_start"),
        ]

    def __str__(self) -> str:
        return f"{self.db.name}/{self.name}"

    @property
    def key(self) -> Key:
        return Key.parse(self.key_label)

    @property
    def audio_file(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.audio_path

    def stem_paths(self, *, kind: str = "role") -> dict[str, Path]:
        return {s.name: s.file for s in self.stems.all() if s.kind == kind}


class Stem(models.Model):
    """A stem file of a clip: one of the three roles, or a raw separator output."""

    class Kind(models.TextChoices):
        ROLE = "role"
        RAW = "raw"

    ROLES = ROLES  # the three roles, defined once in generation.conditions

    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="stems")
    name = models.CharField(max_length=32, help_text="Role (vocal|harmonic|percussion) or raw stem name.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    path = models.CharField(max_length=1024, help_text="Relative to MEDIA_ROOT.")
    method = models.CharField(max_length=64, help_text="What made it: spleeter:4stems, spleeter:2stems+hpss, stems, ...")

    class Meta:
        ordering = ["clip", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["clip", "name"], name="unique_stem_name_per_clip")]

    def __str__(self) -> str:
        return f"{self.clip} {self.name}"

    @property
    def file(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.path


class Candidate(models.Model):
    """A mashup candidate: a vocal seed over a harmonic and a percussion stem, and how each was adjusted.

    Ratios are time-stretch factors applied to the stem's tempo (seed tempo /
    stem tempo: 1.1 plays the stem 10 % faster); offsets are seconds added to
    the stem's first downbeat after alignment on the seed's first downbeat
    (positive = later). The record plus `seed` re-renders the candidate bit
    for bit.
    """

    Condition = Condition  # the candidate rules' enum, defined once in generation.conditions

    db = models.ForeignKey(MashupDB, on_delete=models.CASCADE, related_name="candidates",
                           help_text="The vocal seed's MashupDB.")
    vocal_clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="+")
    harmonic_clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="+")
    percussion_clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="+")
    condition = models.CharField(max_length=16, choices=[(c.value, c.label) for c in Condition], db_index=True)
    harmonic_shift_semitones = models.IntegerField(default=0)
    harmonic_ratio = models.FloatField(default=1.0)
    percussion_ratio = models.FloatField(default=1.0)
    harmonic_offset_s = models.FloatField(default=0.0)
    percussion_offset_s = models.FloatField(default=0.0)
    duration_s = models.FloatField()
    seed = models.BigIntegerField()
    spec_key = models.CharField(max_length=64, unique=True, help_text="Hash of every field above: no duplicates.")
    split = models.CharField(max_length=8, blank=True, db_index=True,
                             help_text="'test' for the objective-evaluation set; blank otherwise.")
    mix_path = models.CharField(max_length=1024, blank=True)
    vocal_path = models.CharField(max_length=1024, blank=True)
    harmonic_path = models.CharField(max_length=1024, blank=True)
    percussion_path = models.CharField(max_length=1024, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.condition} v{self.vocal_clip_id} h{self.harmonic_clip_id} p{self.percussion_clip_id}"

    @property
    def is_rendered(self) -> bool:
        return bool(self.mix_path)

    @property
    def has_whole_accompaniment(self) -> bool:
        """Harmonic and percussion stems from one clip: another song's whole backing (the A-vs-B mashup)."""
        return self.harmonic_clip_id == self.percussion_clip_id

    def media(self, field: str) -> Path | None:
        value = getattr(self, field)
        return Path(settings.MEDIA_ROOT) / value if value else None
