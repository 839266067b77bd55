"""The stages as django-tasks tasks: each runs the same service code as its management command.

A task takes only the Job's id (JSON-safe); its arguments live on the Job row, so a retry is a new row with
the same arguments. Failures become the Job's error sentence in workbench.jobs.run.
"""

from __future__ import annotations

from pathlib import Path

from django.urls import reverse
from django_tasks import task

from generation.candidates import get_db, render_candidates
from generation.errors import IngestError
from generation.models import Candidate
from generation.services import ingest_into_db
from scoring import services as scoring
from workbench import jobs


def _ingest(a: dict, rep: jobs.JobReporter) -> dict:
    report = ingest_into_db(
        [Path(p) for p in a["paths"]], db_name=a["db"], separator=a.get("separator", "spleeter:4stems"),
        clip_seconds=float(a.get("clip_seconds", 30.0)),
        annotations_dir=Path(a["annotations"]) if a.get("annotations") else None,
        segment=a.get("segment", "start"), clips_per_file=int(a.get("clips_per_file", 1)),
        jobs=max(1, int(a.get("jobs", 1))), progress=False, say=rep.say, on_progress=rep)
    if report.failures and not report.added and not report.skipped:
        raise IngestError(f"nothing could be ingested; first problem: {report.failures[0].message}")
    return {"db": a["db"], "added": len(report.added), "skipped": report.skipped,
            "failed": len(report.failures), "links": [[f"MashupDB {a['db']}", reverse("generation:db", args=[a["db"]])]]}


def _candidates(a: dict):
    """The candidates a render or score job works on: `db` (a missing one is a CandidateError), narrowed by
    `condition` and by `ids` (the rank page's "render these")."""
    qs = Candidate.objects.filter(db=get_db(a["db"]))
    if a.get("condition"):
        qs = qs.filter(condition=a["condition"])
    if a.get("ids"):
        qs = qs.filter(id__in=[int(i) for i in a["ids"]])
    return qs


def _render(a: dict, rep: jobs.JobReporter) -> dict:
    n = render_candidates(_candidates(a).select_related("db").order_by("id"), progress=False,
                          force=bool(a.get("force")), on_progress=rep, jobs=int(a.get("jobs", 1)))
    rep.say(f"{n} candidates rendered")
    return {"db": a["db"], "rendered": n,
            "links": [[f"candidates of {a['db']}", reverse("generation:candidates", args=[a["db"]])]]}


def _score(a: dict, rep: jobs.JobReporter) -> dict:
    system = scoring.get_system(a["system"])
    n = scoring.score(system, _candidates(a).select_related("vocal_clip").order_by("id"), progress=False,
                      rescore=bool(a.get("rescore")), on_progress=rep, jobs=int(a.get("jobs", 1)))
    rep.say(f"{system.name}: {n} candidates scored")
    return {"db": a["db"], "system": system.name, "scored": n,
            "links": [["systems", reverse("scoring:systems")]]}


def _train(a: dict, rep: jobs.JobReporter) -> dict:
    """Train one system; `crops` back-to-back crops per candidate (the README's small CPU recipe uses 8)."""
    from scoring.features import FeatureConfig

    rep(0, 1, f"training {a.get('name') or a['arch']}")
    recipe = a.get("recipe", "default")
    cfg = FeatureConfig.paper() if recipe == "paper" else FeatureConfig.pitch_band() if recipe == "pitch_band" \
        else FeatureConfig()
    offsets = [k * cfg.crop_s for k in range(max(1, int(a.get("crops", 1))))]
    system = scoring.train(db_name=a["db"], arch=a["arch"], lsro=bool(a.get("lsro")), epochs=int(a["epochs"]),
                           seed=int(a.get("seed", 0)), name=a.get("name"), width=float(a.get("width", 1.0)),
                           config=cfg, crop_offsets_s=offsets, batch_size=int(a.get("batch_size", 16)),
                           progress=False, on_epoch=rep.epoch,
                           patience=None if a.get("patience") in (None, "") else int(a["patience"]),
                           transpose_semitones=float(a.get("transpose_semitones") or 0.0))
    rep(1, 1, system.name)
    return {"system": system.name, "history": rep.history, "links": [["systems", reverse("scoring:systems")]]}


def _generate(a: dict, rep: jobs.JobReporter) -> dict:
    """Draw `count` new candidates, or (with `total`) top the MashupDB up to `total` of that condition."""
    from generation.candidates import generate, top_up

    links = [[f"candidates of {a['db']}", reverse("generation:candidates", args=[a["db"]])]]
    acc, vocal = a.get("accompaniment_db") or None, a.get("vocal_id") or None
    if a.get("total"):
        rep(0, 1, f"topping {a['condition']} up to {a['total']} candidates")
        held = top_up(db_name=a["db"], condition=a["condition"], total=int(a["total"]), seed=int(a.get("seed", 0)),
                      accompaniment_db=acc, vocal_id=vocal)
        rep.say(f"{held} of {a['total']} {a['condition']} candidates held" + (" (no more qualify)"
                                                                             if held < int(a["total"]) else ""))
        rep(1, 1, "stored")
        return {"db": a["db"], "held": held, "links": links}
    rep(0, 1, f"drawing {a['count']} {a['condition']} candidates")
    report = generate(db_name=a["db"], condition=a["condition"], count=int(a["count"]), seed=int(a.get("seed", 0)),
                      accompaniment_db=acc, vocal_id=vocal)
    rep.say(f"{len(report.created)} created, {report.existing} already stored, "
            f"{report.skipped_seeds} vocal seeds skipped (nothing qualified)")
    rep(1, 1, "stored")
    return {"db": a["db"], "created": len(report.created), "existing": report.existing, "links": links}


def _songs(a: dict, rep: jobs.JobReporter) -> dict:
    """Generated test songs (stems, mix and ground truth) into `folder`: the demo's stand-in for uploads."""
    from generation.synth_songs import demo_song_specs, render_songs

    specs = demo_song_specs(count=int(a["count"]), seed=int(a["seed"]), seconds=float(a.get("seconds", 30.0)))
    rep(0, len(specs), f"rendering {len(specs)} songs into {a['folder']}")
    songs = render_songs(specs, Path(a["folder"]), progress=False)
    rep(len(songs), len(specs), "rendered")
    return {"folder": a["folder"], "paths": [str(s.mix_path) for s in songs]}


def _studies(a: dict, rep: jobs.JobReporter) -> dict:
    """Design and open the demo's generation and retrieval studies (listening.studies.build_demo_studies)."""
    from listening.studies import build_demo_studies

    rep(0, 1, "designing the demo studies")
    made = build_demo_studies(generation_db=a["generation_db"], retrieval_query_db=a.get("retrieval_query_db"),
                              retrieval_candidate_db=a.get("retrieval_candidate_db"), top_n=int(a.get("top_n", 3)),
                              bottom_n=int(a.get("bottom_n", 3)), n_queries=int(a.get("n_queries", 4)),
                              seed=int(a.get("seed", 0)))
    for study in made:
        rep.say(f"study {study.name} ({study.task}): {study.state}")
    rep(1, 1, "opened")
    return {"studies": [s.pk for s in made],
            "links": [[f"dashboard ({s.task})", reverse("listening:dashboard", args=[s.pk])] for s in made]}


def _evaluate(a: dict, rep: jobs.JobReporter) -> dict:
    systems = list(a["systems"])
    rep(0, 1, f"Table 1 of {', '.join(systems)} on {a['db']}")
    rows = scoring.evaluate(a["db"], systems, per_seed=int(a.get("per_seed", 5)), seed=int(a.get("seed", 0)),
                            progress=False)
    for r in rows:
        rep.say(f"{r['system']}: accuracy {r['accuracy']}, average rank {r['average_rank']:.3f}")
    rep(1, 1, "evaluated")
    keys = ("system", "accuracy", "average_rank", "n_labeled", "n_unlabeled")
    return {"db": a["db"], "table1": [{k: r.get(k) for k in keys} for r in rows],
            "links": [["Table 1 (systems)", reverse("scoring:systems")]]}


def _rank(a: dict, rep: jobs.JobReporter) -> dict:
    """Rank every qualifying pair of one vocal seed and store the top N as matched candidates with scores."""
    from scoring.retrieval import rank_pairs, store_top

    system = scoring.get_system(a["system"])
    vocal, top = int(a["vocal"]), int(a.get("top", 10))
    rep(0, 1, f"ranking the pairs of vocal clip {vocal} with {system.name}")
    ranking = rank_pairs(system, vocal, progress=False, accompaniment_db=a.get("accompaniment_db") or None)
    report = store_top(system, ranking, top=top)
    rep.say(f"{ranking.n_pairs} pairs scored in {ranking.seconds:.1f} s; top {len(report.candidates)} stored "
            f"({report.created} new candidates)")
    rep(1, 1, "stored")
    return {"db": ranking.db, "system": system.name, "vocal": vocal, "pairs": ranking.n_pairs,
            "candidates": [c.id for c in report.candidates], "scores": [p.score for p in ranking.pairs[:top]],
            "links": [["ranking", reverse("workbench:rank_result", args=[rep.job_id])]]}


BODIES = {"ingest": _ingest, "generate": _generate, "evaluate": _evaluate, "render": _render, "score": _score,
          "train": _train, "rank": _rank, "songs": _songs, "studies": _studies}
"""Each stage's body `(arguments, reporter) -> outputs`: what its task runs in a worker and run_here runs here."""


@task()
def rank_task(job_id: int) -> dict:
    return jobs.run(job_id, _rank)


@task()
def generate_task(job_id: int) -> dict:
    return jobs.run(job_id, _generate)


@task()
def evaluate_task(job_id: int) -> dict:
    return jobs.run(job_id, _evaluate)


@task()
def ingest_task(job_id: int) -> dict:
    return jobs.run(job_id, _ingest)


@task()
def render_task(job_id: int) -> dict:
    return jobs.run(job_id, _render)


@task()
def score_task(job_id: int) -> dict:
    return jobs.run(job_id, _score)


@task()
def train_task(job_id: int) -> dict:
    return jobs.run(job_id, _train)


@task()
def songs_task(job_id: int) -> dict:
    return jobs.run(job_id, _songs)


@task()
def studies_task(job_id: int) -> dict:
    return jobs.run(job_id, _studies)


TASKS = {"ingest": ingest_task, "generate": generate_task, "evaluate": evaluate_task, "render": render_task,
         "score": score_task, "train": train_task, "rank": rank_task, "songs": songs_task, "studies": studies_task}
"""Each stage's task: what `jobs.launch` enqueues for a worker."""
