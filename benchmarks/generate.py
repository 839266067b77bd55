"""Candidate rendering speed: candidates per second, Rubber Band's share of the time, the stem-cache hit rate.

    .venv/bin/python benchmarks/generate.py [--count 180] [--pool 36] [--seconds 30] [--engine R2] [--features-sr 22050]

The retrieval setting of the paper: `--count` matched candidates (paper: 180)
for one vocal seed, accompaniment drawn from another collection of `--pool`
generated songs (harmonic = bass + other, percussion = drums). The vocal seed
is the one of 4 query songs with the most qualifying pairs. Every candidate
is rendered in full (44.1 kHz stereo float mix and three stems, loudness
normalised) starting from an empty stem cache, and each render is deleted
after it is timed so the run needs little disk. With `--features-sr`, the
mono feature stems of the scoring stage (`adjust_for_features`) are timed
too, again from an empty cache. Songs are kept in data/bench-songs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation import stretch
from generation.conditions import ClipInfo, draw_candidates, qualifying_stems
from generation.render import adjust_for_features, render_candidate
from generation.stem_cache import StemCache
from generation.synth_songs import SongTruth, demo_song_specs, render_songs

ROOT = Path(__file__).resolve().parent.parent


def clip_info(song: SongTruth, clip_id: int) -> ClipInfo:
    """A song as a clip; writes harmonic.wav = bass + other beside its stems once."""
    harmonic = song.out_dir / "harmonic.wav"
    if not harmonic.exists():
        bass, sr = sf.read(song.stem_paths["bass"], dtype="float32")
        other, _ = sf.read(song.stem_paths["other"], dtype="float32")
        sf.write(harmonic, bass + other, sr, subtype="FLOAT")
    return ClipInfo(id=clip_id, key=song.key, tempo_bpm=song.tempo_bpm, downbeats=song.downbeats,
                    duration_s=song.seconds,
                    stems={"vocal": song.stem_paths["vocals"], "harmonic": harmonic, "percussion": song.stem_paths["drums"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=180)
    ap.add_argument("--pool", type=int, default=36, help="songs in the accompaniment collection")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each generated song")
    ap.add_argument("--engine", choices=["R2", "R3"], default="R2")
    ap.add_argument("--features-sr", type=int, default=0, help="also time adjust_for_features at this rate (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()

    songs_dir = ROOT / "data" / "bench-songs"
    t0 = time.perf_counter()
    queries = render_songs(demo_song_specs(count=4, seed=100, seconds=args.seconds), songs_dir / "queries", progress=False)
    pool_songs = render_songs(demo_song_specs(count=args.pool, seed=101, seconds=args.seconds), songs_dir / "pool",
                              progress=True)
    songs_s = time.perf_counter() - t0
    seeds = [clip_info(s, i + 1) for i, s in enumerate(queries)]
    pool = [clip_info(s, 1000 + i) for i, s in enumerate(pool_songs)]
    vocal = max(seeds, key=lambda c: qualifying_stems(c, pool, condition="matched").pair_count)
    q = qualifying_stems(vocal, pool, condition="matched")
    drawn = draw_candidates(seeds, pool, condition="matched", count=args.count, seed=args.seed, vocal_id=vocal.id)
    clips = {c.id: c for c in [*seeds, *pool]}

    numbers: dict[str, float | int | str] = {
        "count": args.count, "engine": args.engine, "song_seconds": args.seconds,
        "qualifying_harmonic": len(q.harmonic), "qualifying_percussion": len(q.percussion),
    }
    with tempfile.TemporaryDirectory(prefix="mashlab-bench-") as tmp:
        cache = StemCache(Path(tmp) / "cache", engine=args.engine)
        stretch.reset_stats()
        t0 = time.perf_counter()
        for i, spec in enumerate(drawn.candidates):
            out = Path(tmp) / f"cand{i}"
            render_candidate(spec, clips, out, cache=cache)
            shutil.rmtree(out)
        total = time.perf_counter() - t0
        rb = stretch.stats()
        numbers |= {
            "render_s_per_candidate": total / args.count,
            "render_candidates_per_s": args.count / total,
            "render_rubberband_share": rb.seconds / total,
            "rubberband_calls": rb.calls,
            "rubberband_s_per_call": rb.seconds / max(rb.calls, 1),
            "render_cache_hit_rate": cache.stats.hit_rate,
        }
        if args.features_sr:
            cache = StemCache(Path(tmp) / "cache-features", engine=args.engine)
            stretch.reset_stats()
            t0 = time.perf_counter()
            for spec in drawn.candidates:
                adjust_for_features(spec, clips, sr=args.features_sr, cache=cache)
            total = time.perf_counter() - t0
            numbers |= {
                "features_sr": args.features_sr,
                "features_s_per_candidate": total / args.count,
                "features_rubberband_share": stretch.stats().seconds / total,
                "features_cache_hit_rate": cache.stats.hit_rate,
            }

    print(f"songs ready in {songs_s:.1f} s; vocal seed {vocal.id} ({vocal.key.label}, {vocal.tempo_bpm:g} BPM): "
          f"{len(q.harmonic)} harmonic x {len(q.percussion)} percussion qualifying clips")
    for name, value in numbers.items():
        print(f"{name:28s} {value:.4g}" if isinstance(value, float) else f"{name:28s} {value}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
