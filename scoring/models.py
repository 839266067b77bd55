"""Registered mashability systems and their scores for candidates."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from generation.models import Candidate


class System(models.Model):
    """A scorer: a trained network (checkpoint + config) or the AutoMashUpper baseline."""

    class Arch(models.TextChoices):
        PREMIX = "premix"
        POSTMIX = "postmix"
        AMU = "amu"

    name = models.SlugField(max_length=64, unique=True)
    arch = models.CharField(max_length=16, choices=Arch.choices)
    lsro = models.BooleanField(default=False)
    checkpoint = models.CharField(max_length=1024, blank=True, help_text="Relative to MEDIA_ROOT, or absolute.")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def checkpoint_file(self) -> Path | None:
        if not self.checkpoint:
            return None
        path = Path(self.checkpoint)
        return path if path.is_absolute() else Path(settings.MEDIA_ROOT) / path


class Score(models.Model):
    """One system's mashability for one candidate (posterior of 'good', or AMU's raw score)."""

    system = models.ForeignKey(System, on_delete=models.CASCADE, related_name="scores")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "candidate"], name="one_score_per_system_candidate")]
        indexes = [models.Index(fields=["system", "value"])]

    def __str__(self) -> str:
        return f"{self.system}: {self.candidate_id} = {self.value:.4f}"


class Evaluation(models.Model):
    """One row of the paper's Table 1: a system on a test MashupDB's test set."""

    system = models.ForeignKey(System, on_delete=models.CASCADE, related_name="evaluations")
    db = models.ForeignKey("generation.MashupDB", on_delete=models.CASCADE, related_name="evaluations")
    accuracy = models.FloatField(null=True, blank=True, help_text="Labeled accuracy at threshold 0.5; null for AMU.")
    accuracy_note = models.CharField(max_length=255, blank=True)
    average_rank = models.FloatField()
    n_labeled = models.PositiveIntegerField()
    n_unlabeled = models.PositiveIntegerField()
    retrieval = models.JSONField(default=dict, blank=True,
                                 help_text="R@k and normalised ranks per vocal seed (scoring.evaluation).")
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "db"], name="one_evaluation_per_system_db")]
        ordering = ["db", "system"]
