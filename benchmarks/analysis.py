"""Analysis speed: every table, every export and Figure 4 from a million synthetic ratings.

    .venv/bin/python benchmarks/analysis.py [--ratings 1000000] [--seed 11] [--holm]

Goal: under 10 s for 1,000,000 ratings (the whole analyse_ratings call,
validation included). Prints seconds per stage; asserts nothing.

The synthetic study follows the paper's design: generation pages pair a
system's top or bottom mashup with the original of the same vocal; retrieval
queries carry one top-1 clip per system plus the original, three pages each;
every page is rated by three of a pool of participants on all five aspects.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import (
    figures,  # noqa: E402
    tables,  # noqa: E402
)
from analysis.ratings import ASPECTS, coverage, validate_ratings  # noqa: E402
from analysis.report import analyse_ratings  # noqa: E402

SYSTEMS = ("AMU", "PreMixNet", "PostMixNet", "PreMixNet+LSRO", "PostMixNet+LSRO")
QUALITY = {"original": 4.2, "AMU": 2.6, "PreMixNet": 3.0, "PostMixNet": 3.1,
           "PreMixNet+LSRO": 3.3, "PostMixNet+LSRO": 3.0}
RATERS = 3


def _scores(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(base + rng.normal(0.0, 0.9, size=base.shape)), 1, 5).astype(np.int64)


def _rows(stim_page: np.ndarray, stim_ids: np.ndarray, stim_system: np.ndarray, stim_group: np.ndarray,
          stim_query: np.ndarray, stim_quality: np.ndarray, page_raters: np.ndarray, task: str,
          page_prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    """Expand stimuli x raters x aspects into long rows (all vectorised)."""
    n_stim, n_asp = len(stim_ids), len(ASPECTS)
    s_idx = np.repeat(np.arange(n_stim), RATERS * n_asp)
    r_idx = np.tile(np.repeat(np.arange(RATERS), n_asp), n_stim)
    a_idx = np.tile(np.arange(n_asp), n_stim * RATERS)
    participant = page_raters[stim_page[s_idx], r_idx]
    page = stim_page[s_idx]
    # one heard_before answer and one time per (participant, page): derive both from a hash of the pair
    pair = page.astype(np.int64) * 100_003 + participant
    lookup = rng.random(1 << 16)
    heard = np.where(lookup[pair % (1 << 16)] < 0.3, "yes", "no")
    seconds = np.round(60 + 80 * lookup[(pair * 7 + 3) % (1 << 16)], 1)
    return pd.DataFrame({
        "task": task,
        "page": np.char.add(page_prefix, page.astype(str)),
        "participant": np.char.add("p", np.char.zfill(participant.astype(str), 5)),
        "stimulus": stim_ids[s_idx],
        "system": stim_system[s_idx],
        "group": stim_group[s_idx],
        "query": stim_query[s_idx],
        "aspect": np.asarray(ASPECTS)[a_idx],
        "score": _scores(rng, stim_quality[s_idx]),
        "heard_before": heard,
        "seconds": seconds,
        "listens_daily": np.where(participant % 7 < 6, "yes", "no"),
        "produces_music": np.where(participant % 5 < 2, "yes", "no"),
    })


def synthetic_ratings(*, n_ratings: int, seed: int, n_participants: int = 3000) -> pd.DataFrame:
    """About ``n_ratings`` long-format ratings, half generation, half retrieval, from ``seed``."""
    rng = np.random.default_rng(seed)
    per_page = 2 * RATERS * len(ASPECTS)  # two clips on a page
    n_pages_gen = max(2 * len(SYSTEMS), (n_ratings // 2) // per_page)
    n_queries = max(4, (n_ratings - n_pages_gen * per_page) // (3 * per_page))

    def raters(n_pages: int) -> np.ndarray:
        # three distinct participants per page: a random start and two fixed offsets
        start = rng.integers(0, n_participants, size=n_pages)
        return (start[:, None] + np.array([0, 1, 2]) * 997) % n_participants

    # generation: page i shows a mashup of system i % S (top on even rounds, bottom on odd) and an original
    page = np.arange(n_pages_gen)
    system = np.asarray(SYSTEMS)[page % len(SYSTEMS)]
    group = np.where((page // len(SYSTEMS)) % 2 == 0, "top", "bottom")
    quality = np.array([QUALITY[s] for s in system]) + np.where(group == "top", 0.4, -0.4)
    gen = _rows(
        stim_page=np.concatenate([page, page]),
        stim_ids=np.concatenate([np.char.add("g-mix-", page.astype(str)), np.char.add("g-orig-", page.astype(str))]),
        stim_system=np.concatenate([system, np.full(n_pages_gen, "original")]),
        stim_group=np.concatenate([group, np.full(n_pages_gen, "")]),
        stim_query=np.full(2 * n_pages_gen, ""),
        stim_quality=np.concatenate([quality, np.full(n_pages_gen, QUALITY["original"])]),
        page_raters=raters(n_pages_gen), task="generation", page_prefix="g", rng=rng,
    )
    # retrieval: per query one clip per system + original, permuted into three pages of two
    all_systems = np.asarray(("original",) + SYSTEMS)
    q = np.repeat(np.arange(n_queries), len(all_systems))
    sys_idx = np.tile(np.arange(len(all_systems)), n_queries)
    perm = np.argsort(rng.random((n_queries, len(all_systems))), axis=1).ravel()
    stim_page = q * 3 + perm // 2
    query_quality = rng.normal(0.0, 0.3, size=n_queries)[q]
    ret = _rows(
        stim_page=stim_page,
        stim_ids=np.char.add(np.char.add("r-", q.astype(str)), np.char.add("-", all_systems[sys_idx])),
        stim_system=all_systems[sys_idx],
        stim_group=np.full(len(q), ""),
        stim_query=np.char.add("q", q.astype(str)),
        stim_quality=np.array([QUALITY[s] - 0.3 for s in all_systems])[sys_idx] + query_quality,
        page_raters=raters(n_queries * 3), task="retrieval", page_prefix="r", rng=rng,
    )
    return pd.concat([gen, ret], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--holm", action="store_true")
    args = ap.parse_args()
    frame = synthetic_ratings(n_ratings=args.ratings, seed=args.seed)
    print(f"{len(frame):,} synthetic ratings, {frame['stimulus'].nunique():,} stimuli, "
          f"{frame['participant'].nunique():,} participants")

    cfg = tables.AnalysisConfig(seeds={"synthetic": args.seed})
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ratings = validate_ratings(frame)
    coverage(ratings, ratings_per_stimulus=3)
    timings["validate + coverage"] = time.perf_counter() - t
    t = time.perf_counter()
    medians = tables.stimulus_medians(ratings)
    timings["stimulus medians"] = time.perf_counter() - t
    t = time.perf_counter()
    mos = tables.mos_table(medians, config=cfg)
    timings["MOS table"] = time.perf_counter() - t
    t = time.perf_counter()
    tables.subjects_table(ratings, config=cfg)
    timings["subjects table (alpha)"] = time.perf_counter() - t
    t = time.perf_counter()
    tables.significance_table(medians, mos, config=cfg, holm=args.holm)
    timings["significance table"] = time.perf_counter() - t
    t = time.perf_counter()
    figures.figure4(mos)
    timings["figure 4 (build)"] = time.perf_counter() - t
    for name, seconds in timings.items():
        print(f"  {name:<26} {seconds:6.2f} s")
    print(f"  {'sum of stages':<26} {sum(timings.values()):6.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        report = analyse_ratings(frame, Path(tmp), holm=args.holm, config=cfg)
        total, total_cpu = time.perf_counter() - t, time.process_time() - cpu
        csv_path = Path(tmp) / "ratings.csv"
        t = time.perf_counter()
        analyse_ratings(csv_path, Path(tmp) / "from_csv", formats="json", config=cfg)
        from_csv = time.perf_counter() - t
    print(f"analyse_ratings, every format ({len(report.files)} files): {total:.2f} s wall, "
          f"{total_cpu:.2f} s CPU (goal < 10 s)")
    print(f"analyse_ratings from its ratings.csv, json only: {from_csv:.2f} s")
    print(f"best systems: {report.manifest['best_system']}")
    print(report.subjects[["task", "n_subjects", "cronbach_alpha", "alpha_ci_low", "alpha_ci_high"]]
          .to_string(index=False))


if __name__ == "__main__":
    main()
