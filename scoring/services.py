"""Django side of scoring: candidates → features, training runs → Systems, Scores stored per candidate.

Features come from each candidate's adjusted stems, made at the feature sample
rate through the generation stage's stem cache (`generation.candidates.feature_stems`),
so the same candidate always yields the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from tqdm import tqdm

from generation.candidates import GenerationError, clips_of, feature_stems, get_db
from generation.conditions import Condition
from generation.models import Candidate, Clip
from scoring.errors import ScoringError
from scoring.features import FeatureConfig, mix_features, stem_features
from scoring.losses import NEGATIVE, POSITIVE, UNLABELED
from scoring.models import Evaluation, Score, System

AMU_SR = 22050
AMU_NAME = "amu"


def label_of(condition: str) -> int:
    """Training label: original = positive, unmatched_* = negative, matched = unlabeled."""
    if condition == Condition.ORIGINAL.value:
        return POSITIVE
    if condition == Condition.MATCHED.value:
        return UNLABELED
    return NEGATIVE


def candidate_features(candidates: Sequence[Candidate], *, arch: str, config: FeatureConfig,
                       progress: bool = True, offsets_s: Sequence[float] = (0.0,)) -> np.ndarray:
    """Network input for each candidate: (N·K, 3, T, 128) for premix, (N·K, 1, T, 128) for postmix.

    One crop of ``config.crop_s`` seconds per start time in ``offsets_s`` (K of
    them, seconds from the start of the mashup), candidate-major: row
    ``i * K + k`` is candidate i's crop at ``offsets_s[k]``. Several crops per
    candidate multiply the training examples of a small MashupDB (one original
    per vocal seed) without stretching any stem again.
    """
    offsets = [float(o) for o in offsets_s]
    if not offsets or min(offsets) < 0:
        raise ScoringError(f"offsets_s must be a non-empty list of start times ≥ 0 s, got {list(offsets_s)}")
    rows = []
    clips = clips_of(candidates)
    for c in tqdm(candidates, desc="features", unit="cand", disable=not progress):
        stems = _stems(c, sr=config.sr, clips=clips)
        for off in offsets:
            if off + config.crop_s > c.duration_s + 1e-6:
                raise ScoringError(f"candidate {c.id}: a {config.crop_s:g} s crop at {off:g} s runs past its "
                                   f"{c.duration_s:g} s")
            rows.append(stem_features(stems, sr=config.sr, config=config, offset_s=off) if arch == "premix"
                        else mix_features(stems, sr=config.sr, config=config, offset_s=off))
    if not rows:
        raise ScoringError("no candidates to compute features for")
    return np.stack(rows).astype(np.float32)


def _stems(candidate: Candidate, *, sr: int, clips) -> dict[str, np.ndarray]:
    try:
        return feature_stems(candidate, sr=sr, clips=clips)
    except GenerationError as exc:
        raise ScoringError(str(exc)) from None


def system_dir(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "systems" / name


def train(
    *,
    db_name: str,
    arch: str,
    lsro: bool,
    epochs: int,
    seed: int,
    out_dir: Path | None = None,
    name: str | None = None,
    width: float = 1.0,
    config: FeatureConfig | None = None,
    batch_size: int = 16,
    progress: bool = True,
    crop_offsets_s: Sequence[float] = (0.0,),
    balance_classes: bool = True,
) -> System:
    """Train one system on the DB's non-test candidates and register it (checkpoint path, config, metrics).

    ``crop_offsets_s``: start times (s) of the training crops taken from each
    candidate (see :func:`candidate_features`); scoring always uses the crop at 0 s.
    """
    from scoring.training import train_model

    if arch not in ("premix", "postmix"):
        raise ScoringError(f"arch must be premix or postmix, got {arch!r}")
    db = _db(db_name)
    name = name or (f"{arch}_lsro" if lsro else arch)
    cfg = config or FeatureConfig()
    cands = list(Candidate.objects.filter(db=db).exclude(split="test").order_by("id"))
    labels = np.array([label_of(c.condition) for c in cands], dtype=np.int64)
    if not (labels == POSITIVE).any() or not (labels == NEGATIVE).any():
        raise ScoringError(
            f"MashupDB {db.name!r} needs original and unmatched candidates to train on "
            f"(have {len(cands)} candidates): run `manage.py generate` first"
        )
    if not lsro:  # without LSRO the unlabeled examples carry no target: leave them out
        keep = labels != UNLABELED
        cands, labels = [c for c, k in zip(cands, keep) if k], labels[keep]
    offsets = [float(o) for o in crop_offsets_s]
    feats = candidate_features(cands, arch=arch, config=cfg, progress=progress, offsets_s=offsets)
    labels = np.repeat(labels, len(offsets))
    groups = np.repeat(np.array([c.vocal_clip_id for c in cands]), len(offsets))
    out = Path(out_dir) if out_dir else system_dir(name)
    result = train_model(
        arch=arch, features=feats, labels=labels, groups=groups, epochs=epochs, seed=seed, lsro=lsro,
        out_dir=out, width=width, batch_size=batch_size, feature_config=cfg, progress=progress,
        balance_classes=balance_classes,
        arguments={"db": db.name, "arch": arch, "lsro": lsro, "epochs": epochs, "seed": seed, "width": width,
                   "name": name, "n_candidates": len(cands), "crop_offsets_s": offsets},
    )
    metrics = {"history": result.history, "final": result.history[-1] if result.history else {}}
    return _register(name, arch=arch, lsro=lsro, checkpoint=result.checkpoint_path,
                     config={"feature_config": cfg.to_dict(), "width": width, "trained_on": db.name,
                             "crop_offsets_s": offsets},
                     metrics=metrics)


def _db(name: str):
    try:
        return get_db(name)
    except GenerationError as exc:
        raise ScoringError(str(exc)) from None


def _register(name: str, *, arch: str, lsro: bool, checkpoint: Path | None, config: dict, metrics: dict) -> System:
    media = Path(settings.MEDIA_ROOT).resolve()
    ckpt = ""
    if checkpoint is not None:
        path = Path(checkpoint).resolve()
        ckpt = str(path.relative_to(media)) if media in path.parents else str(path)
    system, _ = System.objects.update_or_create(
        name=name, defaults={"arch": arch, "lsro": lsro, "checkpoint": ckpt, "config": config, "metrics": metrics}
    )
    return system


def register_checkpoint(name: str, checkpoint: Path) -> System:
    """Register a checkpoint made elsewhere; its architecture and feature config come from the file."""
    from scoring.training import load_checkpoint

    if not Path(checkpoint).is_file():
        raise ScoringError(f"checkpoint {checkpoint} not found")
    model, state = load_checkpoint(checkpoint)
    arch = state["architecture"]["arch"]
    cfg = state.get("feature_config") or FeatureConfig().to_dict()
    lsro = bool((state.get("arguments") or {}).get("lsro", state.get("lsro", False)))
    return _register(name, arch=arch, lsro=lsro, checkpoint=Path(checkpoint),
                     config={"feature_config": cfg, "width": state["architecture"].get("width", 1.0)}, metrics={})


def get_system(name: str) -> System:
    if name == AMU_NAME:
        system, _ = System.objects.get_or_create(name=AMU_NAME, defaults={"arch": System.Arch.AMU})
        return system
    system = System.objects.filter(name=name).first()
    if system is None:
        known = ", ".join(System.objects.values_list("name", flat=True)) or "none"
        raise ScoringError(f"no system named {name!r} (known: {known}); train one or register a checkpoint")
    return system


def load_system(system: System):
    """(model in eval mode, its FeatureConfig, crop offsets in s) of a network system.

    A system trained on several crops per candidate scores the mean posterior
    over the same crops.
    """
    from scoring.training import load_checkpoint

    path = system.checkpoint_file
    if path is None or not path.is_file():
        raise ScoringError(f"system {system.name}: checkpoint {path} is missing")
    model, state = load_checkpoint(path, arch=system.arch)
    cfg = FeatureConfig.from_dict(state.get("feature_config") or system.config.get("feature_config") or {})
    offsets = [float(o) for o in (system.config or {}).get("crop_offsets_s") or [0.0]]
    return model, cfg, offsets


def scorer(system: System) -> Callable[[Sequence[Candidate]], np.ndarray]:
    """A function from candidates to scores for `system` (loads its checkpoint once)."""
    if system.arch == System.Arch.AMU:
        return _amu_scores
    from scoring.nets import predict

    model, cfg, offsets = load_system(system)

    def run(cands: Sequence[Candidate]) -> np.ndarray:
        feats = candidate_features(cands, arch=system.arch, config=cfg, progress=False, offsets_s=offsets)
        return predict(model, feats).reshape(len(cands), len(offsets)).mean(axis=1)

    return run


def _amu_scores(cands: Sequence[Candidate]) -> np.ndarray:
    from scoring.amu import mashability

    out = []
    clips = clips_of(cands)
    for c in cands:
        stems = _stems(c, sr=AMU_SR, clips=clips)
        beats = np.asarray(c.vocal_clip.beats, dtype=float)
        beats = beats[beats < c.duration_s]
        out.append(mashability(stems, sr=AMU_SR, beat_times_s=beats).total)
    return np.asarray(out, dtype=float)


def score(system: System, candidates: Iterable[Candidate], *, batch: int = 16, progress: bool = True,
          rescore: bool = False) -> int:
    """Score candidates not yet scored by `system` (all with `rescore`); returns how many were stored.

    Scores of a batch are computed before anything is written, and each batch
    is stored in one transaction, so a failure stores nothing of that batch.
    """
    cands = list(candidates)
    if not rescore:
        done = set(Score.objects.filter(system=system, candidate__in=cands).values_list("candidate_id", flat=True))
        cands = [c for c in cands if c.id not in done]
    run = scorer(system)  # a broken system (checkpoint missing or of the other arch) fails even with nothing to do
    if not cands:
        return 0
    stored = 0
    bar = tqdm(total=len(cands), desc=f"score {system.name}", unit="cand", disable=not progress)
    for i in range(0, len(cands), batch):
        chunk = cands[i : i + batch]
        values = run(chunk)
        with transaction.atomic():
            for c, v in zip(chunk, values):
                Score.objects.update_or_create(system=system, candidate=c, defaults={"value": float(v)})
        stored += len(chunk)
        bar.update(len(chunk))
    bar.close()
    return stored


def ensure_test_set(db_name: str, *, per_seed: int = 5, seed: int = 0) -> list[Candidate]:
    """The DB's test set; built as the paper did when absent.

    Per vocal seed: its original, one unmatched candidate (the three kinds in
    turn over the seeds) and `per_seed` matched candidates. Seeds that cannot
    take a condition are skipped and reported by the caller.
    """
    from generation.candidates import generate

    db = _db(db_name)
    existing = list(Candidate.objects.filter(db=db, split="test").order_by("id"))
    if existing:
        return existing
    unmatched = [Condition.UNMATCHED_KEY, Condition.UNMATCHED_TEMPO, Condition.UNMATCHED_BOTH]
    clips = list(Clip.objects.filter(db=db).order_by("id").values_list("id", flat=True))
    chosen: list[int] = []
    for n, clip_id in enumerate(clips):
        for condition, count in ((Condition.ORIGINAL, 1), (unmatched[n % 3], 1), (Condition.MATCHED, per_seed)):
            try:
                report = generate(db_name=db.name, condition=condition.value, count=count, seed=seed + n,
                                  vocal_id=clip_id)
            except GenerationError:
                continue
            chosen += [c.id for c in report.created]
    Candidate.objects.filter(id__in=chosen).update(split="test")
    return list(Candidate.objects.filter(db=db, split="test").order_by("id"))


def evaluate(db_name: str, systems: Sequence[str], *, per_seed: int = 5, seed: int = 0,
             progress: bool = True) -> list[dict]:
    """Paper Table 1 per system on the DB's test set: accuracy (labeled, threshold 0.5) and average rank."""
    from scoring.evaluation import table1_row

    test = ensure_test_set(db_name, per_seed=per_seed, seed=seed)
    labels = np.array([label_of(c.condition) for c in test])
    if not (labels == POSITIVE).any() or not (labels == UNLABELED).any():
        raise ScoringError(f"the test set of {db_name!r} needs original and matched candidates")
    rows = []
    for name in systems:
        system = get_system(name)
        score(system, test, progress=progress)
        values = dict(Score.objects.filter(system=system, candidate__in=test).values_list("candidate_id", "value"))
        s = np.array([values[c.id] for c in test])
        row = table1_row(system=system.name, scores=s, labels=labels, calibrated=system.arch != System.Arch.AMU)
        Evaluation.objects.update_or_create(system=system, db=test[0].db, defaults={
            "accuracy": row["accuracy"], "accuracy_note": row.get("accuracy_note") or "",
            "average_rank": row["average_rank"], "n_labeled": row["n_labeled"], "n_unlabeled": row["n_unlabeled"]})
        rows.append(row)
    return rows
