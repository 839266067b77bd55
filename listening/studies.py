"""Studies: design one from stored scores, store its pages and stimuli, open and close it.

Views and commands call these functions; the numeric choices live in the
pure `listening.design`. A design is stored all or nothing (one transaction,
and the stimulus files of a failed design are removed).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from generation.models import Candidate, MashupDB
from listening import design as pure
from listening.delivery import page_frames, source_info
from listening.errors import DeliveryError, DesignError, StimulusError
from listening.models import Page, Stimulus, StimulusLabel, Study
from listening.quality import QualityRules
from listening.stimuli import STIMULUS_FORMATS, write_stimulus
from scoring.models import Score, System


@dataclass(frozen=True)
class StudySettings:
    """How the study runs (not what it shows); all of it is recorded in the study's config.

    completion_url: where a finished participant is sent (``{code}`` and
    ``{pid}`` are replaced by their completion code and external id), e.g.
    ``https://app.prolific.com/submissions/complete?cc={code}``; empty: none.
    max_participants: participants the study admits (0: twice the number the
    design needs, plus 10). client_limit: new participants per client (IP
    address) per hour. first_activity_s: a reserved page nobody plays or
    answers within this many seconds goes back to the pool (a scripted burst
    cannot hold pages for the whole reservation). headphone_check: every
    participant first takes the antiphase headphone screening of Woods et al.
    2017 (listening.headphones); one who fails it ends there, rates nothing,
    and is recorded as excluded.
    """

    ratings_per_page: int = 3
    pages_per_participant: int = 10
    reservation_s: int = 20 * 60
    require_full_play: bool = False
    audio_format: str = "flac"  # how stimuli are stored: listening.stimuli.STIMULUS_FORMATS (served: delivery)
    completion_url: str = ""
    max_participants: int = 0
    client_limit: int = 10
    first_activity_s: int = 180
    headphone_check: bool = False
    quality: QualityRules = field(default_factory=QualityRules)

    def as_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> StudySettings:
        """Settings from flat form/command values named as in `SETTING_HELP` (missing or None: the default).

        The quality rules (`QualityRules` fields) sit beside the others, so the
        new-study form and ``manage.py design_study`` share one list of names.
        Types are coerced by the defaults' types; validation is `check`.
        """
        base, rules = cls(), QualityRules()

        def pick(obj: object, name: str) -> Any:  # coerced to the default's type
            value, default = values.get(name), getattr(obj, name)
            if value is None or value == "" and not isinstance(default, str):
                return default
            if isinstance(default, bool) != isinstance(value, bool):
                raise DesignError(f"{name.replace('_', ' ')} must be yes or no, got {value!r}", field=name)
            try:
                return type(default)(value)
            except (TypeError, ValueError):
                raise DesignError(f"{name.replace('_', ' ')} must be a {type(default).__name__}, got "
                                  f"{str(value)[:40]!r}", field=name) from None

        quality = QualityRules(**{k: pick(rules, k) for k in QualityRules.__dataclass_fields__})
        return cls(**{k: pick(base, k) for k in cls.__dataclass_fields__ if k != "quality"}, quality=quality)

    @classmethod
    def of(cls, study: Study) -> StudySettings:
        """A stored study's settings: its config (older studies: the defaults), the model's fields on top."""
        cfg = dict(study.config or {})
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg and k != "quality"}
        known.update(ratings_per_page=study.ratings_per_page, pages_per_participant=study.pages_per_participant,
                     reservation_s=study.reservation_s, require_full_play=study.require_full_play)
        return cls(**known, quality=QualityRules.from_config(cfg))

    def check(self) -> None:
        if self.completion_url and not (self.completion_url.startswith(("https://", "http://"))
                                        and len(self.completion_url) <= 500 and self.completion_url.isprintable()
                                        and " " not in self.completion_url):
            raise DesignError(f"the completion URL must be an http(s) address without spaces, got "
                              f"{self.completion_url[:80]!r}")
        if self.quality.min_answers_for_variance < 2:
            raise DesignError(f"the straight-lining rule needs at least 2 answers to measure a variance, got "
                              f"{self.quality.min_answers_for_variance}")
        if self.max_participants < 0 or self.client_limit < 1 or self.first_activity_s < 10:
            raise DesignError("participant limits: at most N participants (N >= 0), at least 1 new participant per "
                              "client per hour, at least 10 s to start a page")
        self.quality.check()
        if self.audio_format not in STIMULUS_FORMATS:
            raise DesignError(f"unknown audio format {self.audio_format!r}; choose one of {', '.join(STIMULUS_FORMATS)}")
        if self.ratings_per_page < 1:
            raise DesignError(f"ratings per page must be >= 1, got {self.ratings_per_page}")
        if self.pages_per_participant < 1:
            raise DesignError(f"pages per participant must be >= 1, got {self.pages_per_participant}")
        if self.reservation_s < 60:
            raise DesignError(f"the reservation must last at least 60 s, got {self.reservation_s} s",
                              field="reservation_s")


def _default_text(name: str) -> str:
    obj = QualityRules() if name in QualityRules.__dataclass_fields__ else StudySettings()
    value = getattr(obj, name)
    return f"{value!r}" if isinstance(value, str) else str(value)


# Each study setting the new-study form and `manage.py design_study` expose, with what it means; the paper's and
# ITU-T P.808's values are named where they differ from the default. "(default X)" is added from the dataclasses.
SETTING_HELP: dict[str, str] = {
    "ratings_per_page": "Participants who rate each page (paper: 3).",
    "pages_per_participant": "Pages one participant rates, gold pages not counted.",
    "reservation_s": "Seconds a participant holds a page once it is shown (20 min = 1200).",
    "require_full_play": "Accept a page only after the server has sent both clips whole.",
    "audio_format": "What participants download: " + "; ".join(f"{k} = {v}" for k, v in STIMULUS_FORMATS.items()) + ".",
    "completion_url": ("Where a finished participant is sent; {code} and {pid} become their completion code and "
                       "external id (Prolific: https://app.prolific.com/submissions/complete?cc={code}). Empty: none."),
    "max_participants": "Participants the study admits; 0 = twice the number the design needs, plus 10.",
    "client_limit": "New participants one client (IP address) may start per hour.",
    "first_activity_s": "Seconds a reserved page may stay unplayed and unanswered before it goes back to the pool.",
    "headphone_check": ("Screen participants for headphones first (Woods et al. 2017: 6 trials of three 200 Hz tones, "
                        "pick the quietest; pass with 5 correct). One who fails rates nothing and is excluded."),
    "gold_every": ("One gold page (a vocal's original beside its unmatched key-and-tempo candidate; the original must "
                   "win on harmony and rhythm) per this many pages; 0 = none (ITU-T P.808: 10)."),
    "speed_share": "A page answered faster (server clock) than this share of its clips' summed length is a speeder page.",
    "max_speeder_share": "Exclude a rater with more than this share of speeder pages.",
    "straightline_variance": "Exclude a rater whose answers vary less than this (variance of 1..5; ITU-T P.808: 0.1).",
    "min_answers_for_variance": "The straight-lining rule applies from this many answers on.",
}


def setting_help(name: str) -> str:
    """`SETTING_HELP[name]` with the default value appended, for form help texts and command --help."""
    return f"{SETTING_HELP[name]} (default {_default_text(name)})"


def _systems(names: Sequence[str] | None) -> list[System]:
    qs = System.objects.order_by("name")
    if names:
        found = {s.name: s for s in qs.filter(name__in=list(names))}
        missing = sorted(set(names) - set(found))
        if missing:
            known = ", ".join(s.name for s in qs) or "none"
            raise DesignError(f"unknown system(s) {', '.join(missing)} (known: {known})", field="systems")
        return [found[n] for n in sorted(found)]
    systems = list(qs)
    if not systems:
        raise DesignError("no scoring systems: score the candidates first", field="systems")
    return systems


def _db(name: str, *, field: str = "db") -> MashupDB:
    try:
        return MashupDB.objects.get(name=name)
    except MashupDB.DoesNotExist:
        known = ", ".join(MashupDB.objects.values_list("name", flat=True)) or "none"
        raise DesignError(f"unknown MashupDB {name!r} (known: {known})", field=field) from None


def _originals(vocal_ids: set[int]) -> dict[int, int]:
    """vocal clip id -> its original-condition candidate id (the lowest id if several)."""
    out: dict[int, int] = {}
    for cid, vid in (Candidate.objects.filter(condition=Candidate.Condition.ORIGINAL, vocal_clip_id__in=vocal_ids)
                     .order_by("id").values_list("id", "vocal_clip_id")):
        out.setdefault(vid, cid)
    return out


def check_name(name: str, *, replace_draft: bool = False) -> Study | None:
    """Whether `name` may be designed: None when free, the draft it would replace when `replace_draft` allows it.

    A name in use is refused (DesignError on ``name``) unless it is a draft
    without participants and `replace_draft` is set; nothing is changed here.
    The draft is deleted only inside the transaction that stores its
    replacement (`_store_design`), so a failed redesign leaves it as it was.
    """
    existing = Study.objects.filter(name=name).first()
    if existing is None:
        return None
    if existing.locked_at is not None or existing.participants.exists():
        raise DesignError(f"study {name!r} already has participants: its design is locked (choose another name)",
                          field="name")
    if existing.state != Study.State.DRAFT:
        raise DesignError(f"study {name!r} is {existing.state}: only a draft can be designed again (choose another "
                          "name)", field="name")
    if not replace_draft:
        raise DesignError(f"a study named {name!r} already exists (a draft with {existing.pages.count()} pages): "
                          "choose another name, or replace that draft on purpose", field="name")
    return existing


def _gold_pairs(vocal_ids: set[int], *, study_settings: StudySettings, n_pages: int, seed: int) -> list[tuple[int, int]]:
    """(original, unmatched key-and-tempo) candidate ids for the gold pages, one vocal each, drawn with `seed`.

    As many as a participant can meet (one per `gold_every` pages, plus one),
    and no more than the vocals that have both versions rendered.
    """
    every = study_settings.quality.gold_every
    if every < 2:
        return []
    originals = _originals(vocal_ids)
    negatives: dict[int, int] = {}
    for cid, vid, mix in (Candidate.objects.filter(condition=Candidate.Condition.UNMATCHED_BOTH,
                                                   vocal_clip_id__in=list(originals))
                          .exclude(mix_path="").order_by("id").values_list("id", "vocal_clip_id", "mix_path")):
        if (Path(settings.MEDIA_ROOT) / mix).is_file():
            negatives.setdefault(vid, cid)
    vocals = sorted(negatives)
    if not vocals:
        raise DesignError("gold pages need, for some vocal of the study, its original and its unmatched key-and-tempo "
                          "candidate rendered: there are none (generate and render unmatched candidates, or set "
                          "one gold page every N pages to 0)", field="gold_every")
    order = np.random.default_rng([seed, 808]).permutation(len(vocals))
    wanted = gold_pages_wanted(study_settings, n_pages=n_pages)
    return [(originals[vocals[i]], negatives[vocals[i]]) for i in order[:wanted]]


def gold_pages_wanted(study_settings: StudySettings, *, n_pages: int) -> int:
    """Gold pages a participant can meet: one per `gold_every` pages of their session, plus one (0: none)."""
    every = study_settings.quality.gold_every
    if every < 2:
        return 0
    return -(-min(study_settings.pages_per_participant, n_pages) // (every - 1)) + 1


def _add_page(study: Study, *, index: int, kind: str, query: int | None, stimuli: list[tuple]) -> None:
    """One page and its two stimulus files; stimuli: (candidate, design key, query, labels) left to right.

    Both clips of a page must share sample rate and channels, so that their
    served files (listening.delivery) have the same byte length.
    """
    page = Page.objects.create(study=study, index=index, query=query, kind=kind)
    media = Path(settings.MEDIA_ROOT)
    paths = []
    for position, (cand, key, stim_query, labels) in enumerate(stimuli):
        token = secrets.token_urlsafe(18)
        try:
            path = write_stimulus(cand.media("mix_path"), media / "studies" / str(study.pk) / token,
                                  audio_format=study.config.get("audio_format", "flac"))
        except StimulusError as exc:
            raise DesignError(f"candidate {cand.pk}: {exc}") from None
        paths.append(path)
        stim = Stimulus.objects.create(page=page, position=position, candidate=cand, vocal_clip_id=cand.vocal_clip_id,
                                       token=token, audio_path=path.relative_to(media).as_posix(), query=stim_query,
                                       design_key=key)
        StimulusLabel.objects.bulk_create(
            StimulusLabel(stimulus=stim, system=lab.system, group=lab.group, rank=lab.rank, score=lab.score)
            for lab in labels)
    try:
        page_frames([source_info(p) for p in paths])
    except DeliveryError as exc:
        raise DesignError(f"page {index}: {exc}") from None


def _store_design(*, name: str, plan: pure.Design, config: dict, study_settings: StudySettings,
                  replace_draft: bool = False, notes: Sequence[str] = ()) -> Study:
    """Write the design's rows and the stimuli's opaque audio files (and the gold pages), all or nothing.

    A draft of the same name (allowed by `replace_draft`) is deleted in the
    same transaction, so it survives any failure; the new study keeps its
    participant link. Its files go once the new design is committed.
    `notes`: sentences about what the design could not give as asked
    (recorded in the config as ``notes``, shown on the dashboard).
    """
    cands = Candidate.objects.in_bulk({s.candidate_id for s in plan.stimuli})
    for spec in plan.stimuli:
        cand = cands[spec.candidate_id]
        mix = cand.media("mix_path")
        if mix is None or not mix.is_file():
            raise DesignError(f"candidate {cand.pk} ({cand.condition}) is not rendered: render candidates first")
    gold = _gold_pairs({c.vocal_clip_id for c in cands.values()}, study_settings=study_settings,
                       n_pages=len(plan.pages), seed=plan.seed)
    gold_cands = Candidate.objects.in_bulk([c for pair in gold for c in pair])
    notes = list(notes)
    wanted = gold_pages_wanted(study_settings, n_pages=len(plan.pages))
    if len(gold) < wanted:
        notes.append(f"Gold pages: a participant may meet {wanted}, but only {len(gold)} vocal(s) have both their "
                     "original and their unmatched key-and-tempo candidate rendered, so some participants see a "
                     "gold page twice as rarely as set.")
    config = {**config, "gold_pages": len(gold), "notes": notes}
    study = None
    old_dir = None
    try:
        with transaction.atomic():
            extra = {}
            old = check_name(name, replace_draft=replace_draft)
            if old is not None:
                old_dir, extra = old.media_dir, {"public_token": old.public_token}
                old.delete()
            study = Study.objects.create(
                name=name, task=plan.task, seed=plan.seed, config=config, **extra,
                ratings_per_page=study_settings.ratings_per_page,
                pages_per_participant=study_settings.pages_per_participant,
                reservation_s=study_settings.reservation_s,
                require_full_play=study_settings.require_full_play,
            )
            for page_spec in plan.pages:
                stimuli = []
                for key in (page_spec.left, page_spec.right):
                    spec = plan.stimulus(key)
                    stimuli.append((cands[spec.candidate_id], spec.key, spec.query, spec.labels))
                _add_page(study, index=page_spec.index, kind=Page.Kind.TEST, query=page_spec.query, stimuli=stimuli)
            first = max((p.index for p in plan.pages), default=-1) + 1
            for j, (original, negative) in enumerate(gold):
                _add_page(study, index=first + j, kind=Page.Kind.GOLD, query=None,
                          stimuli=[(gold_cands[original], 0, None, []), (gold_cands[negative], 0, None, [])])
    except BaseException:
        if study is not None and study.pk:
            shutil.rmtree(Path(settings.MEDIA_ROOT) / "studies" / str(study.pk), ignore_errors=True)
        raise
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)
    return study


def design_generation_study(
    *,
    name: str,
    db_name: str,
    systems: Sequence[str] | None = None,
    top_n: int = 20,
    bottom_n: int = 20,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
    replace_draft: bool = False,
) -> Study:
    """Generation study (SPEC §4): each system's top-N and bottom-N matched candidates of `db_name`, each beside its original.

    Candidates: matched, vocal seed in `db_name`, both accompaniment stems from
    `db_name` too (retrieval candidates, made with another MashupDB, are left out).
    A study name in use is refused unless it is a draft and `replace_draft`
    is set (`check_name`); the draft is replaced only once the new design is stored.
    """
    study_settings.check()
    check_name(name, replace_draft=replace_draft)
    db = _db(db_name)
    chosen = _systems(systems)
    matched = Candidate.objects.filter(db=db, condition=Candidate.Condition.MATCHED,
                                       harmonic_clip__db=db, percussion_clip__db=db)
    scores: dict[str, list[tuple[int, float]]] = {}
    vocal_of: dict[int, int] = {}
    for system in chosen:
        rows = list(Score.objects.filter(system=system, candidate__in=matched)
                    .values_list("candidate_id", "value", "candidate__vocal_clip_id"))
        scores[system.name] = [(c, v) for c, v, _ in rows]
        vocal_of.update({c: vid for c, _, vid in rows})
    originals = _originals(set(vocal_of.values()))
    original_of = {c: originals[v] for c, v in vocal_of.items() if v in originals}
    plan = pure.generation_design(scores=scores, original_of=original_of, top_n=top_n, bottom_n=bottom_n, seed=seed)
    config = {"task": "generation", "db": db_name, "systems": [s.name for s in chosen], "top_n": top_n,
              "bottom_n": bottom_n, "seed": seed, **study_settings.as_config()}
    return _store_design(name=name, plan=plan, config=config, study_settings=study_settings,
                         replace_draft=replace_draft)


def design_retrieval_study(
    *,
    name: str,
    query_db: str,
    candidate_db: str | None = None,
    systems: Sequence[str] | None = None,
    n_queries: int = 30,
    n_candidates: int = 180,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
    replace_draft: bool = False,
) -> Study:
    """Retrieval study (SPEC §4): Q query vocals of `query_db`, C candidates each, each system's top-1 plus the original.

    A query's candidates are the matched candidates with that vocal whose
    accompaniment comes from another MashupDB (`candidate_db` if given),
    C of them drawn with `seed` when there are more; queries with at least one
    are eligible, Q of them drawn with `seed`. Each system ranks only the drawn
    C candidates of a query. Fewer eligible queries than Q, or queries with
    fewer candidates than C, are used as they are and said in the study's
    ``notes`` (config), which the dashboard and the command show.
    """
    study_settings.check()
    check_name(name, replace_draft=replace_draft)
    qdb = _db(query_db)
    cdb = _db(candidate_db, field="candidate_db") if candidate_db else None
    if cdb is not None and cdb.pk == qdb.pk:
        raise DesignError("the candidate MashupDB must differ from the query MashupDB", field="candidate_db")
    chosen = _systems(systems)
    pool = Candidate.objects.filter(db=qdb, condition=Candidate.Condition.MATCHED).exclude(harmonic_clip__db=qdb)
    pool = pool.filter(harmonic_clip__db=cdb, percussion_clip__db=cdb) if cdb else pool.exclude(percussion_clip__db=qdb)
    by_vocal: dict[int, list[int]] = {}
    for cid, vid in pool.values_list("id", "vocal_clip_id"):
        by_vocal.setdefault(vid, []).append(cid)
    originals = _originals(set(by_vocal))
    eligible = [v for v in by_vocal if v in originals]
    if not eligible:
        raise DesignError(f"no vocal of {query_db!r} has matched candidates with accompaniment from another MashupDB "
                          "and an original version: generate them first", field="db")
    vocals = pure.choose_queries(eligible, n_queries=n_queries, seed=seed)
    notes = shortfall_notes(query_db=query_db, n_queries=n_queries, n_eligible=len(eligible),
                            n_candidates=n_candidates, candidates_per_query=[len(by_vocal[v]) for v in vocals])
    queries = []
    for index, vid in enumerate(vocals):
        ids = pure.choose_candidates(by_vocal[vid], n_candidates=n_candidates, seed=seed + 1 + index)
        per_system = {}
        for system in chosen:
            per_system[system.name] = list(Score.objects.filter(system=system, candidate_id__in=ids)
                                           .values_list("candidate_id", "value"))
        queries.append(pure.Query(index, originals[vid], per_system))
    plan = pure.retrieval_design(queries=queries, seed=seed)
    config = {"task": "retrieval", "query_db": query_db, "candidate_db": candidate_db,
              "systems": [s.name for s in chosen], "n_queries": n_queries, "n_candidates": n_candidates,
              "seed": seed, "query_vocal_clips": vocals, **study_settings.as_config()}
    return _store_design(name=name, plan=plan, config=config, study_settings=study_settings,
                         replace_draft=replace_draft, notes=notes)


def shortfall_notes(*, query_db: str, n_queries: int, n_eligible: int, n_candidates: int,
                    candidates_per_query: Sequence[int]) -> list[str]:
    """Sentences for each retrieval count the data could not give as asked (queries Q, candidates per query C)."""
    notes = []
    if n_eligible < n_queries:
        notes.append(f"Asked for {n_queries} queries (Q), but {query_db!r} has only {n_eligible} vocal(s) with an "
                     f"original and matched candidates from another MashupDB: the study uses {n_eligible}.")
    short = [n for n in candidates_per_query if n < n_candidates]
    if short:
        spread = f"{min(short)}" if min(short) == max(short) else f"{min(short)} to {max(short)}"
        notes.append(f"Asked for {n_candidates} candidates per query (C), but {len(short)} of "
                     f"{len(candidates_per_query)} queries have fewer ({spread}): each of them is ranked over all it "
                     "has.")
    return notes


def design_study(
    *,
    task: str,
    name: str,
    db_name: str,
    systems: Sequence[str] | None = None,
    candidate_db: str | None = None,
    top_n: int = 20,
    bottom_n: int = 20,
    n_queries: int = 30,
    n_candidates: int = 180,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
    replace_draft: bool = False,
) -> Study:
    """The `design_study` command and the new-study form: a generation or retrieval study.

    ``systems``: system names (None or empty = every scored system).
    """
    systems = list(systems or []) or None
    if task == Study.Task.GENERATION:
        return design_generation_study(name=name, db_name=db_name, systems=systems, top_n=top_n,
                                       bottom_n=bottom_n, seed=seed, study_settings=study_settings,
                                       replace_draft=replace_draft)
    if task != Study.Task.RETRIEVAL:
        raise DesignError(f"unknown task {task!r}: generation or retrieval", field="task")
    return design_retrieval_study(name=name, query_db=db_name, candidate_db=candidate_db or None, systems=systems,
                                  n_queries=n_queries, n_candidates=n_candidates, seed=seed,
                                  study_settings=study_settings, replace_draft=replace_draft)


def set_state(study: Study, state: str) -> Study:
    """Open or close a study (draft -> open -> closed; closed -> open reopens)."""
    if state not in Study.State.values:
        raise DesignError(f"unknown state {state!r}")
    if state == Study.State.DRAFT and study.participants.exists():
        raise DesignError("a study with participants cannot go back to draft")
    if state == Study.State.OPEN and not study.pages.exists():
        raise DesignError("the study has no pages to rate")
    Study.objects.filter(pk=study.pk).update(state=state)
    study.state = state
    return study


def build_demo_studies(
    *,
    generation_db: str,
    retrieval_query_db: str | None = None,
    retrieval_candidate_db: str | None = None,
    top_n: int = 3,
    bottom_n: int = 3,
    n_queries: int = 4,
    n_candidates: int = 180,
    seed: int = 2021,
    study_settings: StudySettings = StudySettings(pages_per_participant=5),
) -> list[Study]:
    """Design and open the demo's studies (generation, and retrieval when a query MashupDB is given).

    Names: 'demo-generation' and 'demo-retrieval'; a draft or unrated study of
    that name is replaced, a study with participants is kept as it is.
    """
    made = []
    jobs = [("demo-generation", lambda name: design_generation_study(
        name=name, db_name=generation_db, top_n=top_n, bottom_n=bottom_n, seed=seed, study_settings=study_settings,
        replace_draft=True))]
    if retrieval_query_db:
        jobs.append(("demo-retrieval", lambda name: design_retrieval_study(
            name=name, query_db=retrieval_query_db, candidate_db=retrieval_candidate_db, n_queries=n_queries,
            n_candidates=n_candidates, seed=seed, study_settings=study_settings, replace_draft=True)))
    for name, build in jobs:
        existing = Study.objects.filter(name=name).first()
        if existing is not None and existing.participants.exists():
            made.append(existing)
            continue
        if existing is not None:
            set_state(existing, Study.State.DRAFT)
        made.append(set_state(build(name), Study.State.OPEN))
    return made
