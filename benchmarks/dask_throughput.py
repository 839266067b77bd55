"""Scale-out on Dask (issue 14 item 4): ingest and render throughput with 1 and 2 local workers, and a projection.

    .venv/bin/python benchmarks/dask_throughput.py                 # 6 songs of 14 s, 8 candidates (~5 min, 2 cores)
    .venv/bin/python benchmarks/dask_throughput.py --songs 12 --candidates 16 --nodes 10 --workers-per-node 32

What it builds: `--songs` generated songs of `--seconds` (cached under
data/bench-songs), laid out as folders of stems, and a throwaway SQLite
database and MEDIA_ROOT (deleted at the end). Ingest is `ingest --separator
stems` (cut + madmom analysis per clip; Spleeter is left out, it needs its own
venv and weights and would dominate on 2 cores: see benchmarks/ingest.py for
its per-clip cost), into a fresh MashupDB per run. Render is `render --force`
of `--candidates` drawn candidates (half original, half unmatched_key) with an
empty adjusted-stem cache each run, so every run stretches every stem again.

What it prints, for jobs 1 (serial, the baseline) and jobs 2 (a LocalCluster
of 2 one-thread worker processes, its start-up included, since a run pays it):
items/s, seconds per item and the speed-up over serial; the cluster's start-up
alone; and the projected wall time for a 30,000-clip collection (ingest, and
one render per clip) on `--nodes` nodes of `--workers-per-node` workers
(assumption: one worker per core, the measured serial cost per item, the
measured 2-worker efficiency, i.e. speed-up / 2, holding at that scale, and
shared storage fast enough not to be the bottleneck).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLLECTION_CLIPS = 30_000


def _setup_django(root: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{root / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(root / "media")
    os.environ["MASHLAB_DATA_DIR"] = str(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("MASHLAB_DASK_SCHEDULER", None)  # local workers only: the figures are this machine's
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _songs(args, root: Path) -> Path:
    from generation.synth_songs import demo_song_specs, link_stems_folders, render_songs

    cache = REPO / "data" / "bench-songs" / f"dask-seed{args.seed}-n{args.songs}-{args.seconds:g}s"
    songs = render_songs(demo_song_specs(count=args.songs, seed=args.seed, seconds=args.seconds), cache,
                         progress=False)
    return link_stems_folders(songs, root / "stems")


def _ingest(folder: Path, db: str, jobs: int) -> float:
    """Seconds to ingest every song of `folder` into the new MashupDB `db` with `jobs` workers."""
    from django.core.management import call_command

    t0 = time.perf_counter()
    call_command("ingest", str(folder), "--db", db, "--separator", "stems", "--jobs", str(jobs), "--no-progress",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return time.perf_counter() - t0


def _render(db: str, jobs: int) -> tuple[float, int]:
    """(seconds, candidates) to render every candidate of `db` again, from an empty adjusted-stem cache."""
    from generation.candidates import render_candidates, stem_cache
    from generation.models import Candidate

    stem_cache().clear()
    cands = Candidate.objects.filter(db__name=db).select_related("db").order_by("id")
    t0 = time.perf_counter()
    n = render_candidates(cands, progress=False, force=True, jobs=jobs)
    return time.perf_counter() - t0, n


def _startup_s(jobs: int) -> float:
    from config.cluster import dask_client

    t0 = time.perf_counter()
    with dask_client(jobs) as client:
        assert client is not None
        client.submit(int, 1).result()
    return time.perf_counter() - t0


def _hms(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h} h {rem // 60:02d} min"


def _row(stage: str, jobs: int, seconds: float, n: int, base: float) -> None:
    print(f"{stage:<7} jobs {jobs}: {n / seconds:6.3f} items/s  {seconds / n:6.2f} s/item  "
          f"({n} in {seconds:.1f} s; speed-up x{base / seconds:.2f})")


def _project(stage: str, per_item_s: float, efficiency: float, workers: int) -> None:
    wall = COLLECTION_CLIPS * per_item_s / (workers * efficiency)
    print(f"  {stage:<7} {COLLECTION_CLIPS} items x {per_item_s:.2f} s / ({workers} workers x {efficiency:.2f}) "
          f"= {_hms(wall)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=6, help="songs ingested per run (one clip each)")
    ap.add_argument("--seconds", type=float, default=14.0, help="length of each song, s")
    ap.add_argument("--candidates", type=int, default=8, help="candidates rendered per run (even)")
    ap.add_argument("--nodes", type=int, default=10, help="nodes of the projected cluster")
    ap.add_argument("--workers-per-node", type=int, default=16, help="Dask workers per node (= cores, 1 thread)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mashlab-dask-bench-"))
    try:
        _run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(args, root: Path) -> None:
    from django.core.management import call_command

    _setup_django(root)
    folder = _songs(args, root)
    print(f"[dask] {args.songs} songs of {args.seconds:g} s; {os.cpu_count()} CPUs here")
    startup = _startup_s(2)
    ingest = {jobs: _ingest(folder, f"bench-j{jobs}", jobs) for jobs in (1, 2)}
    for i, condition in enumerate(("original", "unmatched_key")):
        call_command("generate", "--db", "bench-j1", "--condition", condition, "--count", str(args.candidates // 2),
                     "--seed", str(i), "--no-progress", stdout=io.StringIO())
    render = {jobs: _render("bench-j1", jobs) for jobs in (1, 2)}
    print(f"LocalCluster of 2 workers: {startup:.1f} s to start and run a first task (included below)")
    for jobs in (1, 2):
        _row("ingest", jobs, ingest[jobs], args.songs, ingest[1])
    for jobs in (1, 2):
        _row("render", jobs, render[jobs][0], render[jobs][1], render[1][0])
    workers = args.nodes * args.workers_per_node
    print(f"projection: {COLLECTION_CLIPS} clips on {args.nodes} nodes x {args.workers_per_node} workers "
          f"(one per core), serial cost per item measured here, 2-worker efficiency (speed-up / 2) kept:")
    _project("ingest", ingest[1] / args.songs, min(1.0, ingest[1] / ingest[2] / 2), workers)
    _project("render", render[1][0] / render[1][1], min(1.0, render[1][0] / render[2][0] / 2), workers)


if __name__ == "__main__":
    main()
