"""Ingest speed: seconds per 30 s clip for separation and for analysis, and the real-time factor.

    .venv/bin/python benchmarks/ingest.py [--songs 6] [--seconds 30] [--separator spleeter:2stems]

Real-time factor = seconds of audio ingested / seconds of processing (goal >= 3).
Separation runs as one batch (TensorFlow starts once), so its start-up is
reported apart and spread over the batch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.annotate_audio import analyse  # noqa: E402
from generation.audio import SR, load_audio  # noqa: E402
from generation.separation import separate  # noqa: E402
from generation.synth_songs import demo_song_specs, render_songs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--separator", default="spleeter:2stems")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        songs = render_songs(demo_song_specs(count=args.songs, seed=args.seed, seconds=args.seconds), root / "songs",
                             progress=False)
        mixes = [s.mix_path for s in songs]
        audio_s = sum(s.seconds for s in songs)

        t0 = time.perf_counter()
        separate(mixes[:1], [root / "warm"], model=args.separator, progress=False)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        separate(mixes, [root / "sep" / s.name for s in songs], model=args.separator, progress=False)
        sep = time.perf_counter() - t0
        startup = max(0.0, one - sep / len(songs))

        analyse(load_audio(mixes[0]), sr=SR)  # builds the madmom processors once
        t0 = time.perf_counter()
        for m in mixes:
            analyse(load_audio(m), sr=SR)
        ana = time.perf_counter() - t0

    per = args.seconds / 30.0
    print(f"clips: {len(songs)} x {args.seconds:g} s, separator {args.separator}")
    print(f"separation: {sep / len(songs) / per:.2f} s per 30 s clip (batch of {len(songs)}; "
          f"start-up ~{startup:.1f} s per call)")
    print(f"analysis:   {ana / len(songs) / per:.2f} s per 30 s clip")
    total = sep + ana
    print(f"real-time factor: {audio_s / total:.2f}x (goal >= 3x); separation alone {audio_s / sep:.2f}x, "
          f"analysis alone {audio_s / ana:.2f}x")


if __name__ == "__main__":
    main()
