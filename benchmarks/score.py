"""Rank every pair, not a sample (issue 4 §6): naive vs factorised PreMixNet scoring on real stems.

    .venv/bin/python benchmarks/score.py             # the issue's run: 104 songs, paper input size, 180 naive
    .venv/bin/python benchmarks/score.py --quick     # a look in under ~2 minutes (12 songs, 5 s crops, 12 naive)
    .venv/bin/python benchmarks/score.py --json out.json

The full run takes ~20 minutes on 2 idle cores (twice that on a busy
machine), most of it the naive 180; the songs are rendered once (~3 min).

What it builds. `--songs` generated songs of `--seconds` (30 s) with tempi in
`--min-bpm`..`--max-bpm` (100-120 BPM: every tempo ratio lies in 0.8..1.2,
so every other clip's percussion stem qualifies, and the key rule (±3
semitones on the relative-major circle, 7 of 12) leaves ~58 % of the clips
as harmonic stems: 104 songs give a vocal seed ~60 × ~103 qualifying stems),
cached under data/bench-songs, imported as stems (`ingest --separator stems`,
no Spleeter; key, tempo and downbeats estimated by madmom) into a throwaway
MashupDB: a temporary SQLite file and MEDIA_ROOT, migrated, deleted at the
end. The vocal seed is the clip with the most qualifying MATCHED pairs.

The model is PreMixNet at `--width` (1 = the paper's 38.8 M weights) with a
seeded random initialisation in eval mode, its BatchNorm statistics seeded
and its output layer rescaled on 6 real candidates so that scores spread over
0..1 (a fresh initialisation scores every pair within ~1e-4 of one value);
saved with scoring.training.save_checkpoint and registered as a System. A
trained checkpoint of the same size costs exactly the same: same shapes,
same operations; the weights' values do not change the arithmetic.
Features: FeatureConfig.paper() (22.05 kHz, n_fft 2048, hop 512, a 30 s
crop = 1292 frames) unless `--crop-s` says otherwise.

What it prints (and writes with --json):
(a) naive: `--naive` random qualifying pairs (distinct), each rendered as the
    paper did — every stem adjusted afresh by Rubber Band (no cache), mono at
    22.05 kHz — then three log-mels and one full PreMixNet pass: seconds;
(b) factorised, the same pairs through a fresh stem cache with
    scoring.retrieval.rank_pairs: seconds, speed-up, max |Δscore| (goal
    ≤ 1e-5); for scale, both against a float64 pass of 6 of the candidates:
    the calibrated output layer multiplies the logits' float32 rounding by
    ~100, so either path can be ~1e-5 from the exact value at the paper's
    size (measured: naive 0.5-2.0e-5, factorised 0.1-0.7e-5 from float64);
(c) exhaustive: all |H| × |P| pairs through rank_pairs (another fresh
    cache): pairs, seconds (stem adjustment, log-mels, network apart),
    pairs/s, and whether it beats the naive run;
(d) the achieved GFLOP/s of the SourceNet passes of (c) (convolution FLOPs
    over the wall time of the SourceNet calls) against the fp32 matrix
    multiply peak (2048², best of 5) measured at the start and the end of the
    same run (the higher is used), and the share; then, because the machine
    may be shared, one SourceNet batch and the matmul alternated three times
    (best of each), which puts both under the same load.

`--plain` runs rank_pairs with the model's own modules instead of the
inference kernels of scoring.factorised.RoleTermer (BatchNorm folded,
channels-last, the role convolution as one matrix product), for a
before/after look.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUICK = {"songs": 12, "naive": 12, "crop_s": 5.0}


def sourcenet_flops(*, frames: int, width: float, n_mels: int = 128) -> float:
    """FLOPs (2 × multiply-adds) of the four convolutions of one SourceNet pass on (1, 1, frames, n_mels)."""
    from scoring.nets import SOURCE_FILTERS, _scaled

    f1, f2, f3, f4 = (_scaled(n, width) for n in SOURCE_FILTERS)
    full, half = frames * n_mels, (frames // 2) * n_mels
    macs = 9 * (1 * f1 * full + f1 * f2 * full + f2 * f3 * half + f3 * f4 * half)
    return 2.0 * macs


def matmul_peak_gflops(*, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n × n matrix product (torch, current thread count)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class Uncached:
    """Stands where a StemCache would, but adjusts every stem afresh and keeps nothing (the paper's way).

    Same samples as StemCache (which stores exactly what this computes):
    decode at `sr` Hz, channel mean, Rubber Band shift (semitones) and stretch (tempo ratio).
    """

    def __init__(self, engine: str = "R2") -> None:
        self.engine = engine

    def get(self, source: Path, *, sr: int, shift_semitones: float = 0.0, ratio: float = 1.0,
            mono: bool = False) -> np.ndarray:
        from generation.audio import load_audio
        from generation.stretch import adjust

        audio = load_audio(Path(source), sr=sr, min_seconds=0.1, max_seconds=None, allow_silent=True)
        if mono:
            audio = audio.mean(axis=0, keepdims=True, dtype=np.float32)
        return adjust(audio, sr=sr, shift_semitones=shift_semitones, ratio=ratio, engine=self.engine)


def _spread(model, *, seed: int, features: np.ndarray, logit_std: float = 1.0) -> None:
    """Seeded BatchNorm statistics and an output layer calibrated on a few real candidates (``features``:
    (n, 3, T, 128)), so that the random model's scores spread over 0..1.

    A fresh initialisation scores every pair within ~1e-4 of one value, and
    larger weights saturate at 1.0, either of which would make the 1e-5
    agreement check say little. The output layer is rescaled so that the
    logit difference of ``features`` has mean 0 and std ``logit_std``. Values
    change, not the arithmetic, so the timings are unchanged.
    """
    import torch

    from scoring.nets import randomise_batchnorm

    model.set_input_normalisation(mean=-8.0, std=3.7)  # log-mel mean and std of these songs' stems
    randomise_batchnorm(model, seed)
    with torch.no_grad():
        logits = torch.cat([model.eval()(torch.as_tensor(x[None])) for x in features])
        d = (logits[:, 1] - logits[:, 0]).double()
        a = logit_std / max(float(d.std()), 1e-12)
        model.head.out.weight.mul_(a)
        model.head.out.bias.mul_(a)
        model.head.out.bias[1] -= a * float(d.mean())


def _paired_sourcenet(model, args, *, seed, q, clips, cfg, duration, cache, rounds: int = 3) -> dict:
    """SourceNet GFLOP/s on one batch of real harmonic stems and the matmul peak, alternated ``rounds`` times.

    The machine is shared, so the in-run figure of (c) compares a peak and a
    pass measured minutes apart; alternating them puts both under the same load.
    Best of the rounds for each.
    """
    import torch

    from scoring.factorised import RoleTermer
    from scoring.features import log_mel
    from scoring.retrieval import adjusted_stem, pair_spec

    termer = RoleTermer(model, "harmonic", fast=not args.plain)
    specs = [pair_spec(seed, h, q.percussion[0], duration_s=duration) for h in q.harmonic[: args.batch_stems]]
    x = np.stack([log_mel(adjusted_stem(s, clips, "harmonic", sr=cfg.sr, cache=cache), sr=cfg.sr, config=cfg)
                  for s in specs])
    xb = (torch.as_tensor(x)[:, None] - model.input_mean) / model.input_std
    flop = sourcenet_flops(frames=cfg.n_frames, width=args.width) * len(specs)
    with torch.no_grad():
        termer.sourcenet(xb)  # warm-up
        best_s, best_mm = float("inf"), 0.0
        for _ in range(rounds):
            best_mm = max(best_mm, matmul_peak_gflops(repeats=3))
            t = time.perf_counter()
            termer.sourcenet(xb)
            best_s = min(best_s, time.perf_counter() - t)
    gflops = flop / best_s / 1e9
    return {"rounds": rounds, "stems": len(specs), "sourcenet_gflops": gflops, "matmul_gflops": best_mm,
            "share_of_peak": gflops / best_mm}


def _setup_django(root: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{root / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(root / "media")
    os.environ["MASHLAB_DATA_DIR"] = str(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _ingest_songs(args, root: Path) -> float:
    """Render (or reuse) the songs, lay them out as stems folders, ingest; returns seconds spent ingesting."""
    import io

    from django.core.management import call_command

    from generation.synth_songs import demo_song_specs, link_stems_folders, render_songs

    cache = REPO / "data" / "bench-songs" / (f"score-seed{args.seed}-n{args.songs}-{args.seconds:g}s-"
                                             f"{args.min_bpm:g}-{args.max_bpm:g}bpm")
    t0 = time.perf_counter()
    specs = demo_song_specs(count=args.songs, seed=args.seed, seconds=args.seconds,
                            tempo_range_bpm=(args.min_bpm, args.max_bpm))
    songs = render_songs(specs, cache, progress=not args.no_progress)
    print(f"[score] {len(songs)} songs ready in {time.perf_counter() - t0:.1f} s ({cache})")
    folder = link_stems_folders(songs, root / "stems")
    t0 = time.perf_counter()
    call_command("ingest", str(folder), "--db", "bench", "--separator", "stems", "--jobs", str(args.jobs),
                 *(["--no-progress"] if args.no_progress else []), stdout=io.StringIO())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"small run: {QUICK} unless given explicitly")
    ap.add_argument("--songs", type=int, default=None, help="generated songs in the MashupDB (default 104)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each song, s")
    ap.add_argument("--min-bpm", type=float, default=100.0)
    ap.add_argument("--max-bpm", type=float, default=120.0)
    ap.add_argument("--naive", type=int, default=None, help="pairs scored naively (default 180)")
    ap.add_argument("--crop-s", type=float, default=None, help="feature crop, s (default 30 = 1292 frames)")
    ap.add_argument("--width", type=float, default=1.0, help="network width (1 = the paper's)")
    ap.add_argument("--batch-stems", type=int, default=4, help="stems per SourceNet batch in rank_pairs")
    ap.add_argument("--plain", action="store_true",
                    help="rank_pairs with the model's own modules, not the inference kernels (a before/after look)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--jobs", type=int, default=2, help="ingest analysis processes")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    defaults = QUICK if args.quick else {"songs": 104, "naive": 180, "crop_s": 30.0}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    progress = not args.no_progress

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mashlab-score-bench-"))
    try:
        return _run(args, root, progress)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(args, root: Path, progress: bool) -> dict:
    import torch
    from tqdm.auto import tqdm

    _setup_django(root)
    from generation import stretch
    from generation.candidates import clip_infos
    from generation.conditions import qualifying_stems
    from generation.models import Clip
    from generation.render import adjust_for_features
    from generation.stem_cache import StemCache
    from scoring.features import FeatureConfig, stem_features
    from scoring.nets import MashabilityNet, PreMixNet, predict
    from scoring.retrieval import pair_spec, rank_pairs
    from scoring.services import register_checkpoint
    from scoring.training import load_checkpoint, save_checkpoint

    peak_start = matmul_peak_gflops()
    print(f"[score] fp32 matmul peak at start: {peak_start:.1f} GFLOP/s ({args.threads} threads)")
    ingest_s = _ingest_songs(args, root)
    infos = clip_infos(Clip.objects.filter(db__name="bench").prefetch_related("stems").order_by("id"))
    seed = max(infos, key=lambda c: qualifying_stems(c, infos).pair_count)
    q = qualifying_stems(seed, infos)
    print(f"[score] ingested {len(infos)} clips in {ingest_s:.1f} s; vocal seed clip {seed.id} "
          f"({seed.key.label}, {seed.tempo_bpm:.1f} BPM): {len(q.harmonic)} harmonic x {len(q.percussion)} "
          f"percussion qualifying stems = {q.pair_count} pairs")
    if not args.quick and min(len(q.harmonic), len(q.percussion)) < 50:
        print("[score] WARNING: fewer than 50 qualifying stems of a role; add --songs")

    cfg = FeatureConfig(sr=22050, n_fft=2048, hop_length=512, crop_s=args.crop_s)
    clips = {c.id: c for c in infos}
    duration = min(max(seed.duration_s, 25.0), 60.0)
    rng = np.random.default_rng(args.seed)
    n_naive = min(args.naive, q.pair_count)
    flat = rng.choice(q.pair_count, size=n_naive, replace=False)
    n_p = len(q.percussion)
    pairs = [(q.harmonic[k // n_p].id, q.percussion[k % n_p].id) for k in flat]

    # the model: seeded random weights, output layer calibrated on 6 candidates (untimed, own cache)
    t0 = time.perf_counter()
    cal_cache = StemCache(root / "cache-calibration")
    cal = [pair_spec(seed, clips[q.harmonic[k // n_p].id], clips[q.percussion[k % n_p].id], duration_s=duration)
           for k in rng.choice(q.pair_count, size=min(6, q.pair_count), replace=False)]
    cal_x = np.stack([stem_features(adjust_for_features(s, clips, sr=cfg.sr, cache=cal_cache), sr=cfg.sr,
                                    config=cfg) for s in cal])
    model: MashabilityNet = PreMixNet(width=args.width)
    _spread(model, seed=args.seed, features=cal_x)
    ckpt = root / "premix-random.pt"
    save_checkpoint(ckpt, model=model, optimizer=None, epoch=0, history=[], feature_config=cfg)
    system = register_checkpoint("bench-premix", ckpt)
    model, _ = load_checkpoint(ckpt, arch="premix")  # the weights rank_pairs will load
    print(f"[score] model ready (width {args.width:g}, {cfg.n_frames} frames) in {time.perf_counter() - t0:.1f} s")

    # (a) naive: render every candidate afresh, one full pass each
    uncached = Uncached()
    stretch.reset_stats()
    naive = np.empty(n_naive)
    render_s = net_s = 0.0
    t_naive0 = time.perf_counter()
    for n, (h, p) in enumerate(tqdm(pairs, desc="(a) naive", unit="cand", disable=not progress)):
        t0 = time.perf_counter()
        spec = pair_spec(seed, clips[h], clips[p], duration_s=duration)
        stems = adjust_for_features(spec, clips, sr=cfg.sr, cache=uncached)  # type: ignore[arg-type]  # duck-typed StemCache
        x = stem_features(stems, sr=cfg.sr, config=cfg)
        t1 = time.perf_counter()
        naive[n] = predict(model, x[None], batch_size=1)[0]
        render_s += t1 - t0
        net_s += time.perf_counter() - t1
    t_naive = time.perf_counter() - t_naive0
    rb = stretch.stats()
    print(f"(a) naive: {n_naive} candidates in {t_naive:.1f} s ({t_naive / n_naive:.2f} s each: render + "
          f"log-mels {render_s:.1f} s, of which Rubber Band {rb.seconds:.1f} s in {rb.calls} calls; "
          f"network {net_s:.1f} s)")

    # (b) factorised, the same pairs, fresh cache
    fact = rank_pairs(system, seed.id, pairs=pairs, cache=StemCache(root / "cache-b"), progress=progress,
                      batch_stems=args.batch_stems, fast=not args.plain)
    diff = max(abs(fact.score_of(h, p) - naive[n]) for n, (h, p) in enumerate(pairs))
    print(f"(b) factorised, same {n_naive}: {fact.seconds:.1f} s ({fact.cache_misses} stems adjusted; adjust "
          f"{fact.adjust_s:.1f} s, log-mels {fact.features_s:.1f} s, network {fact.network_s:.1f} s), "
          f"{t_naive / fact.seconds:.1f}x faster, max |Δscore| = {diff:.2e} (≤ 1e-5: {'yes' if diff <= 1e-5 else 'NO'})")

    # float32 rounding, for scale: a float64 forward pass of a few of those candidates (untimed)
    n64 = min(6, n_naive)
    model64 = copy.deepcopy(model).double()
    x64 = np.stack([stem_features(adjust_for_features(pair_spec(seed, clips[h], clips[p], duration_s=duration),
                                                      clips, sr=cfg.sr, cache=StemCache(root / "cache-b")),
                                  sr=cfg.sr, config=cfg) for h, p in pairs[:n64]])
    with torch.no_grad():
        exact = torch.softmax(model64(torch.as_tensor(x64, dtype=torch.float64)), dim=-1)[:, 1].numpy()
    del model64
    naive_err = float(np.max(np.abs(naive[:n64] - exact)))
    fact_err = max(abs(fact.score_of(h, p) - exact[n]) for n, (h, p) in enumerate(pairs[:n64]))
    print(f"    against a float64 pass of {n64} of them: naive |err| ≤ {naive_err:.2e}, factorised |err| ≤ "
          f"{fact_err:.2e} (float32 rounding, amplified by the calibrated output layer)")

    # (c) exhaustive, fresh cache
    exh = rank_pairs(system, seed.id, cache=StemCache(root / "cache-c"), progress=progress,
                     batch_stems=args.batch_stems, fast=not args.plain)
    beats = exh.seconds < t_naive
    all_scores = np.array([p.score for p in exh.pairs])
    print(f"(c) exhaustive: {exh.n_pairs} pairs ({exh.n_harmonic} x {exh.n_percussion}) in {exh.seconds:.1f} s "
          f"= {exh.pairs_per_second:.1f} pairs/s (adjust {exh.adjust_s:.1f} s, log-mels {exh.features_s:.1f} s, "
          f"network {exh.network_s:.1f} s: SourceNet {exh.stats['sourcenet_s']:.1f} s, role convs "
          f"{exh.stats['role_conv_s']:.1f} s, tails {exh.stats['tail_s']:.1f} s); "
          f"{'beats' if beats else 'does NOT beat'} the naive {n_naive} ({t_naive:.1f} s); scores "
          f"{all_scores.min():.3f}..{all_scores.max():.3f} (median {np.median(all_scores):.3f})")

    # (d) SourceNet throughput in (c) against the matmul peak
    peak_end = matmul_peak_gflops()
    peak = max(peak_start, peak_end)
    frames = cfg.n_frames
    gflop = sourcenet_flops(frames=frames, width=args.width) * exh.stats["sourcenet_stems"] / 1e9
    achieved = gflop / exh.stats["sourcenet_s"]
    print(f"(d) SourceNet in (c): {exh.stats['sourcenet_stems']} stem passes x {frames} frames = {gflop:.0f} GFLOP "
          f"in {exh.stats['sourcenet_s']:.1f} s = {achieved:.1f} GFLOP/s; matmul peak {peak:.1f} GFLOP/s "
          f"(start {peak_start:.1f}, end {peak_end:.1f}): {100 * achieved / peak:.0f} % of peak")
    paired = _paired_sourcenet(model, args, seed=seed, q=q, clips=clips, cfg=cfg, duration=duration,
                               cache=StemCache(root / "cache-c"))
    print(f"(d) SourceNet paired with the matmul (alternated, best of {paired['rounds']}, batch of "
          f"{args.batch_stems} stems): {paired['sourcenet_gflops']:.1f} vs {paired['matmul_gflops']:.1f} GFLOP/s "
          f"= {100 * paired['share_of_peak']:.0f} % of peak")
    result = {
        "songs": len(infos), "song_seconds": args.seconds, "tempo_range_bpm": [args.min_bpm, args.max_bpm],
        "frames": frames, "crop_s": args.crop_s, "width": args.width, "threads": args.threads,
        "batch_stems": args.batch_stems, "kernels": "plain" if args.plain else "fast", "vocal_clip": seed.id,
        "n_harmonic": len(q.harmonic), "n_percussion": len(q.percussion), "ingest_s": ingest_s,
        "naive": {"candidates": n_naive, "seconds": t_naive, "render_s": render_s, "network_s": net_s,
                  "rubberband_s": rb.seconds, "rubberband_calls": rb.calls},
        "factorised": {"candidates": n_naive, "seconds": fact.seconds, "adjust_s": fact.adjust_s,
                       "features_s": fact.features_s, "network_s": fact.network_s,
                       "stems_adjusted": fact.cache_misses, "speedup": t_naive / fact.seconds,
                       "max_abs_diff": diff, "float64_check": {"candidates": n64, "naive_max_err": naive_err,
                                                               "factorised_max_err": fact_err}},
        "exhaustive": {"pairs": exh.n_pairs, "seconds": exh.seconds, "adjust_s": exh.adjust_s,
                       "features_s": exh.features_s, "network_s": exh.network_s, "load_s": exh.load_s,
                       "pairs_per_second": exh.pairs_per_second, "beats_naive": beats,
                       "score_min": float(all_scores.min()), "score_max": float(all_scores.max()), **exh.stats},
        "sourcenet": {"gflop": gflop, "seconds": exh.stats["sourcenet_s"], "gflops": achieved,
                      "matmul_peak_gflops": peak, "peak_start": peak_start, "peak_end": peak_end,
                      "share_of_peak": achieved / peak, "paired": paired},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"[score] wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
