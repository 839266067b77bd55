"""Django side of scoring: candidates → features, training runs → Systems, Scores stored per candidate.

Features come from each candidate's adjusted stems, made at the feature sample
rate through the generation stage's stem cache (`generation.candidates.feature_stems`),
so the same candidate always yields the same input.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from tqdm import tqdm

from config.cluster import ClusterError, check_jobs, dask_client, each_result
from generation.candidates import clips_of, get_db, spec_of, stem_cache
from generation.conditions import UNMATCHED, ClipInfo, Condition
from generation.errors import CandidateError, ConditionError
from generation.models import Candidate, Clip
from generation.scaleout import clips_for
from scoring.amu import VARIANTS as AMU_VARIANTS
from scoring.amu import get_variant as amu_variant
from scoring.errors import ScoringError
from scoring.feature_store import FeatureStore, Recipe
from scoring.features import FeatureConfig
from scoring.losses import NEGATIVE, POSITIVE, UNLABELED
from scoring.models import Evaluation, Score, System
from scoring.scaleout import CandidateItem, SystemRef, compute_features, identity, load_network, recipe_for, score_batch

log = logging.getLogger(__name__)

# --- AutoMashUpper systems (issue 11 item 7): every name in scoring.amu.VARIANTS is a system needing no checkpoint
AMU_NAME = "amu"  # the paper's baseline; "amu_rhythm" is mashlab's stronger variant
AMU_NAMES: tuple[str, ...] = tuple(AMU_VARIANTS)
# --- end AutoMashUpper


def label_of(condition: str) -> int:
    """Training label: original = positive, unmatched_* = negative, matched = unlabeled."""
    if condition == Condition.ORIGINAL.value:
        return POSITIVE
    if condition == Condition.MATCHED.value:
        return UNLABELED
    return NEGATIVE


def feature_store() -> FeatureStore:
    """The shared store of network inputs, under MEDIA_ROOT beside the stem cache (see scoring.feature_store)."""
    return FeatureStore(Path(settings.MEDIA_ROOT) / "cache" / "features")


def candidate_item(candidate: Candidate, clips: dict[int, ClipInfo], *, vocal_beats: Sequence[float] = ()
                   ) -> CandidateItem:
    """A candidate as the plain data scoring.scaleout works on (what a Dask worker is sent): no ORM there."""
    spec = spec_of(candidate)
    return CandidateItem(id=candidate.id, spec=spec, spec_key=candidate.spec_key, clips=clips_for(spec, clips),
                         vocal_beats=tuple(float(b) for b in vocal_beats))


def candidate_items(candidates: Sequence[Candidate], *, with_beats: bool = False) -> list[CandidateItem]:
    """`candidate_item` of each candidate, with one query for their clips (and one for the seeds' beats)."""
    clips = clips_of(candidates)
    beats: dict[int, list] = {}
    if with_beats:
        beats = dict(Clip.objects.filter(id__in={c.vocal_clip_id for c in candidates}).values_list("id", "beats"))
    return [candidate_item(c, clips, vocal_beats=beats.get(c.vocal_clip_id) or ()) for c in candidates]


def system_ref(system: System) -> SystemRef:
    """`system` as plain data for scoring.scaleout: checkpoint path and mtime, registered fallbacks, cache roots."""
    path = system.checkpoint_file
    mtime = path.stat().st_mtime_ns if path is not None and path.is_file() else 0
    config = system.config or {}
    return SystemRef(name=system.name, arch=system.arch, feature_root=feature_store().root, stem_root=stem_cache().root,
                     checkpoint=str(path) if path is not None else "", mtime_ns=mtime,
                     feature_config=dict(config.get("feature_config") or {}),
                     crop_offsets_s=tuple(float(o) for o in config.get("crop_offsets_s") or [0.0]),
                     amu_variant=str(config.get("amu_variant") or ""))


def candidate_identity(candidate: Candidate, clips: dict) -> dict:
    """What a candidate's features depend on: its spec key and the SHA-256 of each source stem it reads."""
    return identity(candidate_item(candidate, clips))


def _compute(candidate: Candidate, recipe: Recipe, clips: dict) -> np.ndarray:
    return compute_features(candidate_item(candidate, clips), recipe, stem_cache().root)


def stored_features(candidates: Sequence[Candidate], recipe: Recipe, *, progress: bool = True) -> list[str]:
    """The feature-store key of each candidate under ``recipe``, computing (and storing) entries not yet there.

    Nothing is kept in memory: an entry is read back memory-mapped when used.
    """
    if not candidates:
        raise ScoringError("no candidates to compute features for")
    store = feature_store()
    clips = clips_of(candidates)
    keys = []
    for c in tqdm(candidates, desc="features", unit="cand", disable=not progress):
        key = store.key(candidate_identity(c, clips), recipe)
        store.get_or_compute(key, recipe, functools.partial(_compute, c, recipe, clips))
        keys.append(key)
    return keys


def candidate_features(candidates: Sequence[Candidate], *, arch: str, config: FeatureConfig,
                       progress: bool = True, offsets_s: Sequence[float] = (0.0,)) -> np.ndarray:
    """Network input for each candidate: (N·K, 3, T, 128) for premix, (N·K, 1, T, 128) for postmix.

    One crop of ``config.crop_s`` seconds per start time in ``offsets_s`` (K of
    them, seconds from the start of the mashup), candidate-major: row
    ``i * K + k`` is candidate i's crop at ``offsets_s[k]``. Read from (and
    added to) the feature store; for a few candidates at a time (scoring) —
    training streams from the store instead (:func:`stored_examples`).
    """
    recipe = recipe_for(arch, config, offsets_s)
    store = feature_store()
    keys = stored_features(candidates, recipe, progress=progress)
    arrays = [store.load(k, recipe, verify=False) for k in keys]
    return np.concatenate([np.asarray(a) for a in arrays]).astype(np.float32)


def recording_groups(candidates: Sequence[Candidate]) -> np.ndarray:
    """Validation group of each candidate: the smallest vocal clip id among the excerpts of its vocal's recording.

    So every candidate built on one recording (several clips per file, verse
    and chorus) falls on the same side of the train/validation split; where a
    recording has one clip, or a clip records no source hash, the group is
    that clip's id.
    """
    ids = {c.vocal_clip_id for c in candidates}
    recording = {clip_id: sha or f"clip {clip_id}"
                 for clip_id, sha in Clip.objects.filter(id__in=ids).values_list("id", "source_sha256")}
    first: dict[str, int] = {}
    for clip_id in sorted(ids):
        first.setdefault(recording[clip_id], clip_id)
    return np.array([first[recording[c.vocal_clip_id]] for c in candidates], dtype=np.int64)


def stored_examples(candidates: Sequence[Candidate], labels: np.ndarray, recipe: Recipe, *,
                    progress: bool = True):
    """Training examples of ``candidates`` streamed from the feature store: K crops each, candidate-major.

    Returns a :class:`scoring.examples.StoredExamples` (imported here: it needs torch).
    """
    from scoring.examples import StoredExamples

    store = feature_store()
    keys = stored_features(candidates, recipe, progress=progress)
    k = len(recipe.offsets_s)
    return StoredExamples(
        [store.path_for(key) for key in keys], n_crops=k, example_shape=recipe.shape[1:],
        labels=np.repeat(np.asarray(labels), k), groups=np.repeat(recording_groups(candidates), k),
        digests=[d for key in keys for d in store.crop_digests_of(key)],
    )


def system_dir(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "systems" / name


def train(
    *,
    db_name: str | Sequence[str],
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
    patience: int | None = None,
    device: str | None = None,
    workers: int = 0,
    lr: float | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    transpose_semitones: float = 0.0,
) -> System:
    """Train one system on the non-test candidates of one or more MashupDBs and register its best epoch.

    ``crop_offsets_s``: start times (s) of the crops taken from each candidate
    (see :func:`candidate_features`); the system scores the mean posterior
    over the same crops. Features stream from the feature store, so memory
    does not grow with the number of candidates. ``patience`` and ``lr``
    default to :mod:`scoring.training`'s (5 epochs, Adam 1e-4).
    ``transpose_semitones``: shift all stems of each training example together
    by up to that many semitones (:mod:`scoring.augment`; 0 = off).
    """
    from scoring.training import DEFAULT_LR, DEFAULT_PATIENCE, train_model

    if arch not in ("premix", "postmix"):
        raise ScoringError(f"arch must be premix or postmix, got {arch!r}")
    dbs = [get_db(n) for n in ([db_name] if isinstance(db_name, str) else list(db_name))]
    if not dbs:
        raise ScoringError("name at least one MashupDB to train on")
    db_names = [db.name for db in dbs]
    name = name or (f"{arch}_lsro" if lsro else arch)
    cfg = config or FeatureConfig()
    cands = list(Candidate.objects.filter(db__in=dbs).exclude(split="test").order_by("id"))
    labels = np.array([label_of(c.condition) for c in cands], dtype=np.int64)
    if not (labels == POSITIVE).any() or not (labels == NEGATIVE).any():
        raise ScoringError(
            f"MashupDB {', '.join(db_names)} needs original and unmatched candidates to train on "
            f"(have {len(cands)} candidates): run `manage.py generate` first"
        )
    if not lsro:  # without LSRO the unlabeled examples carry no target: leave them out
        keep = labels != UNLABELED
        cands, labels = [c for c, k in zip(cands, keep) if k], labels[keep]
    offsets = [float(o) for o in crop_offsets_s]
    examples = stored_examples(cands, labels, recipe_for(arch, cfg, offsets), progress=progress)
    out = Path(out_dir) if out_dir else system_dir(name)
    result = train_model(
        arch=arch, examples=examples, epochs=epochs, seed=seed, lsro=lsro, out_dir=out, width=width,
        batch_size=batch_size, feature_config=cfg, crop_offsets_s=offsets, progress=progress,
        balance_classes=balance_classes, device=device, workers=workers,
        patience=DEFAULT_PATIENCE if patience is None else patience, lr=DEFAULT_LR if lr is None else lr,
        on_epoch=on_epoch, transpose_semitones=transpose_semitones,
        arguments={"db": db_names[0] if len(db_names) == 1 else db_names, "name": name,
                   "n_candidates": len(cands)},
    )
    kept = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    metrics = {"history": result.history, "final": result.history[-1] if result.history else {},
               "best_epoch": result.best_epoch, "best": kept, "stopped_early": result.stopped_early}
    return _register(name, arch=arch, lsro=lsro, checkpoint=result.checkpoint_path,
                     config={"feature_config": cfg.to_dict(), "width": width, "trained_on": ", ".join(db_names),
                             "crop_offsets_s": offsets},
                     metrics=metrics)


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
    """Register a checkpoint made elsewhere; architecture, width, features and crops all come from the file."""
    from scoring.training import checkpoint_crop_offsets, load_checkpoint

    if not Path(checkpoint).is_file():
        raise ScoringError(f"checkpoint {checkpoint} not found")
    model, state = load_checkpoint(checkpoint)
    arch = state["architecture"]["arch"]
    cfg = state.get("feature_config") or FeatureConfig().to_dict()
    extra = state.get("extra") or {}
    lsro = bool(extra.get("lsro", (extra.get("arguments") or {}).get("lsro", False)))
    history = list(state.get("history") or [])
    kept: dict = next((h for h in history if h.get("epoch") == state.get("epoch")), {})
    return _register(name, arch=arch, lsro=lsro, checkpoint=Path(checkpoint),
                     config={"feature_config": cfg, "width": state["architecture"].get("width", 1.0),
                             "crop_offsets_s": checkpoint_crop_offsets(state) or [0.0],
                             "trained_on": str((extra.get("arguments") or {}).get("db", ""))},
                     metrics={"history": history, "best_epoch": state.get("epoch"), "best": kept})


def get_system(name: str) -> System:
    """The system called ``name``; an AMU variant's name registers that baseline on first use."""
    if name in AMU_VARIANTS:
        return _amu_system(name)
    system = System.objects.filter(name=name).first()
    if system is None:
        known = ", ".join(System.objects.values_list("name", flat=True)) or "none"
        raise ScoringError(f"no system named {name!r} (known: {known}); train one or register a checkpoint")
    return system


def load_system(system: System):
    """(model in eval mode, its FeatureConfig, crop offsets in s) of a network system, all from its checkpoint.

    A system trained on several crops per candidate scores the mean posterior
    over the same crops. Checkpoints older than the crop field fall back to
    the system's registered config.
    """
    return load_network(system_ref(system))


def scorer(system: System) -> Callable[[Sequence[Candidate]], np.ndarray]:
    """A function from candidates to scores for `system` (loads its checkpoint once per process).

    A broken system (checkpoint missing or of the other arch, unknown AMU variant) fails here.
    """
    ref = system_ref(system)
    if system.arch == System.Arch.AMU:
        amu_variant(ref.amu_variant or ref.name)
    else:
        load_network(ref)

    def run(cands: Sequence[Candidate]) -> np.ndarray:
        return score_batch(ref, candidate_items(cands, with_beats=ref.arch == System.Arch.AMU))

    return run


def _amu_system(name: str) -> System:
    """The AMU system ``name`` (config ``{"amu_variant": name}``), created on first use.

    Before the two variants existed, the one system called "amu" computed what
    is now ``amu_rhythm``: such a system (no recorded variant) is renamed
    ``amu_rhythm`` with its scores, which are that variant's, and a new "amu"
    is made; nothing stored is lost or mislabelled.
    """
    with transaction.atomic():
        old = System.objects.filter(name=AMU_NAME, arch=System.Arch.AMU).first()
        if old is not None and "amu_variant" not in (old.config or {}):
            if System.objects.filter(name="amu_rhythm").exists():
                raise ScoringError('system "amu" predates the AMU variants and "amu_rhythm" exists too: delete one')
            old.name, old.config = "amu_rhythm", {**(old.config or {}), "amu_variant": "amu_rhythm"}
            old.save(update_fields=["name", "config"])
        system, _ = System.objects.get_or_create(
            name=name, defaults={"arch": System.Arch.AMU, "config": {"amu_variant": name}})
    if system.arch != System.Arch.AMU:
        raise ScoringError(f"system {name!r} is a {system.arch} network, but the name is reserved for the AMU baseline")
    return system


def score(system: System, candidates: Iterable[Candidate], *, batch: int = 16, progress: bool = True,
          rescore: bool = False, on_progress: Callable[[int, int, str], None] | None = None,
          jobs: int = 1) -> int:
    """Score candidates not yet scored by `system` (all with `rescore`); returns how many were stored.

    `on_progress(done, total, current item)` is called after each stored batch, beside the tqdm bar.

    Scores of a batch are computed before anything is written, and each batch
    is stored in one transaction, so a failure stores nothing of that batch.
    With `jobs` > 1 or MASHLAB_DASK_SCHEDULER set, batches are computed on Dask
    workers (config.cluster; each loads the network once) and stored here as
    they arrive, so batches may be stored out of order.
    """
    try:
        check_jobs(jobs)
    except ClusterError:
        raise ScoringError(f"jobs must be a positive integer, got {jobs!r}") from None
    if batch < 1:
        raise ScoringError(f"batch must be ≥ 1 candidate, got {batch}")
    cands = list(candidates)
    if not rescore:
        done = set(Score.objects.filter(system=system, candidate__in=cands).values_list("candidate_id", flat=True))
        cands = [c for c in cands if c.id not in done]
    scorer(system)  # a broken system (checkpoint missing or of the other arch) fails even with nothing to do
    if not cands:
        return 0
    ref = system_ref(system)
    items = candidate_items(cands, with_beats=system.arch == System.Arch.AMU)
    starts = list(range(0, len(cands), batch))
    stored = 0
    with dask_client(jobs if len(starts) > 1 else 1) as client, \
            tqdm(total=len(cands), desc=f"score {system.name}", unit="cand", disable=not progress) as bar:
        for n, values in each_result(client, score_batch, [(ref, items[i : i + batch]) for i in starts]):
            chunk = cands[starts[n] : starts[n] + batch]
            with transaction.atomic():
                for c, v in zip(chunk, values):
                    Score.objects.update_or_create(system=system, candidate=c, defaults={"value": float(v)})
            stored += len(chunk)
            bar.update(len(chunk))
            if on_progress is not None:
                on_progress(stored, len(cands), f"candidate {chunk[-1].id}")
    log.info("%s scored %d candidates", system.name, stored)
    return stored


def ensure_test_set(db_name: str, *, per_seed: int = 5, seed: int = 0) -> list[Candidate]:
    """The DB's test set; built as the paper did when absent.

    Per vocal seed: its original, one unmatched candidate (the three kinds in
    turn over the seeds) and `per_seed` matched candidates. Seeds that cannot
    take a condition are skipped and reported by the caller.
    """
    from generation.candidates import generate

    db = get_db(db_name)
    existing = list(Candidate.objects.filter(db=db, split="test").order_by("id"))
    if existing:
        return existing
    clips = list(Clip.objects.filter(db=db).order_by("id").values_list("id", flat=True))
    chosen: list[int] = []
    for n, clip_id in enumerate(clips):
        for condition, count in ((Condition.ORIGINAL, 1), (UNMATCHED[n % 3], 1), (Condition.MATCHED, per_seed)):
            try:
                report = generate(db_name=db.name, condition=condition.value, count=count, seed=seed + n,
                                  vocal_id=clip_id)
            except (CandidateError, ConditionError):
                continue
            chosen += [c.id for c in report.created]
    Candidate.objects.filter(id__in=chosen).update(split="test")
    return list(Candidate.objects.filter(db=db, split="test").order_by("id"))


def evaluate(db_name: str, systems: Sequence[str], *, per_seed: int = 5, seed: int = 0,
             progress: bool = True) -> list[dict]:
    """Paper Table 1 per system on the DB's test set: accuracy (labeled, threshold 0.5) and average rank.

    Each row also carries ``retrieval``: R@k and normalised ranks of each
    vocal seed's original among that seed's candidates in the test set
    (:func:`scoring.evaluation.retrieval_metrics`); a larger ``per_seed``
    makes the pool closer to every qualifying accompaniment; and
    ``whole_accompaniment``: how the unlabeled candidates whose harmonic and
    percussion stems come from one clip weigh on the average rank
    (:func:`scoring.evaluation.unlabeled_subset_effect`).
    """
    from scoring.evaluation import retrieval_metrics, table1_row, unlabeled_subset_effect

    test = ensure_test_set(db_name, per_seed=per_seed, seed=seed)
    labels = np.array([label_of(c.condition) for c in test])
    groups = np.array([c.vocal_clip_id for c in test])
    whole = np.array([c.has_whole_accompaniment for c in test])
    if not (labels == POSITIVE).any() or not (labels == UNLABELED).any():
        held = Candidate.objects.filter(db__name=db_name, condition=Condition.ORIGINAL.value).exclude(split="test")
        if not (labels == POSITIVE).any() and held.exists():
            why = (f"; each vocal seed's original is already a training candidate ({held.count()} of them), so "
                   "none is left to test on: evaluate on a MashupDB kept aside for testing")
        elif not (labels == UNLABELED).any():
            why = ("; no pair of its clips qualifies as matched (too few recordings: excerpts of one recording never "
                   "accompany each other; or keys and tempi too far apart)")
        else:
            why = ""
        raise ScoringError(f"the test set of {db_name!r} needs original and matched candidates{why}")
    rows = []
    for name in systems:
        system = get_system(name)
        score(system, test, progress=progress)
        values = dict(Score.objects.filter(system=system, candidate__in=test).values_list("candidate_id", "value"))
        s = np.array([values[c.id] for c in test])
        row = table1_row(system=system.name, scores=s, labels=labels, calibrated=system.arch != System.Arch.AMU)
        row["retrieval"] = retrieval_metrics(scores=s, labels=labels, groups=groups)
        row["whole_accompaniment"] = unlabeled_subset_effect(scores=s, labels=labels, subset=whole)
        Evaluation.objects.update_or_create(system=system, db=test[0].db, defaults={
            "accuracy": row["accuracy"], "accuracy_note": row.get("accuracy_note") or "",
            "average_rank": row["average_rank"], "n_labeled": row["n_labeled"], "n_unlabeled": row["n_unlabeled"],
            "retrieval": row["retrieval"]})
        rows.append(row)
    return rows
