"""Naive vs factorised PreMixNet scoring for one vocal seed (issue 4 §6).

Prints, in one run: the matrix-multiply peak of this machine; the naive
scoring of N random candidates (one full PreMixNet pass each, as the paper);
the factorised scoring of the same N (seconds, speed-up, largest score
difference); the exhaustive ranking of all |H| × |P| pairs; and the achieved
GFLOP/s of the SourceNet passes against the peak.

It times the *network* on log-mel inputs of the paper's size (1292 frames ×
128 bins = 30 s at 22.05 kHz, hop 512), drawn from a seeded RNG with a
log-mel-like range; stem rendering (Rubber Band adjustment) is not part of
it. Weights are a seeded random initialisation with BatchNorm in eval mode,
which costs exactly what a trained checkpoint costs.

    python benchmarks/score.py                      # paper size, 180 naive, 50 × 50 stems
    python benchmarks/score.py --frames 160 --naive 20 --stems 10   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.factorised import role_terms, tail_scores  # noqa: E402
from scoring.features import FeatureConfig  # noqa: E402
from scoring.nets import SOURCE_FILTERS, PreMixNet, _scaled, predict  # noqa: E402


def sourcenet_flops(*, frames: int, width: float, n_mels: int = 128) -> float:
    """Multiply-adds × 2 of one SourceNet pass on (1, 1, frames, n_mels)."""
    f1, f2, f3, f4 = (_scaled(n, width) for n in SOURCE_FILTERS)
    full, half = frames * n_mels, (frames // 2) * n_mels
    macs = 9 * (1 * f1 * full + f1 * f2 * full + f2 * f3 * half + f3 * f4 * half)
    return 2.0 * macs


def matmul_peak_gflops(*, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n × n matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=FeatureConfig.paper().n_frames, help="log-mel frames (1292 = 30 s)")
    ap.add_argument("--width", type=float, default=1.0, help="network width multiplier (1 = paper)")
    ap.add_argument("--naive", type=int, default=180, help="candidates scored one by one")
    ap.add_argument("--stems", type=int, default=50, help="harmonic and percussion stems each")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    peak = matmul_peak_gflops()
    print(f"matmul peak: {peak:.1f} GFLOP/s ({args.threads} threads)")
    model = PreMixNet(width=args.width).eval()
    model.set_input_normalisation(mean=-6.0, std=3.0)
    shape = (args.frames, 128)
    v = torch.as_tensor(rng.normal(-6, 3, size=shape), dtype=torch.float32)
    hs = torch.as_tensor(rng.normal(-6, 3, size=(args.stems, *shape)), dtype=torch.float32)
    ps = torch.as_tensor(rng.normal(-6, 3, size=(args.stems, *shape)), dtype=torch.float32)
    pairs = [(int(rng.integers(args.stems)), int(rng.integers(args.stems))) for _ in range(args.naive)]

    t = time.perf_counter()
    naive = np.array([predict(model, torch.stack([v, hs[i], ps[j]])[None])[0] for i, j in pairs])
    t_naive = time.perf_counter() - t
    print(f"naive: {args.naive} candidates in {t_naive:.2f} s ({t_naive / max(args.naive, 1):.3f} s each)")

    t = time.perf_counter()
    used_h = sorted({i for i, _ in pairs})
    used_p = sorted({j for _, j in pairs})
    tv = role_terms(model, v, role="vocal")
    th = dict(zip(used_h, role_terms(model, hs[used_h], role="harmonic")))
    tp = dict(zip(used_p, role_terms(model, ps[used_p], role="percussion")))
    fact = np.concatenate([
        tail_scores(model, torch.cat([tv + th[i] + tp[j] for i, j in pairs[s : s + 64]])).double().numpy()
        for s in range(0, len(pairs), 64)
    ])
    t_fact = time.perf_counter() - t
    diff = float(np.max(np.abs(fact - naive))) if len(pairs) else 0.0
    print(f"factorised, same {args.naive}: {t_fact:.2f} s, {t_naive / t_fact:.1f}× faster, max |Δscore| = {diff:.2e}")

    t = time.perf_counter()
    th_all = role_terms(model, hs, role="harmonic")
    tp_all = role_terms(model, ps, role="percussion")
    t_stems = time.perf_counter() - t
    n_pairs = args.stems**2
    t = time.perf_counter()
    scores = np.empty(n_pairs)
    idx = torch.arange(n_pairs)
    for s in range(0, n_pairs, 128):
        k = idx[s : s + 128]
        scores[s : s + len(k)] = tail_scores(model, tv + th_all[k // args.stems] + tp_all[k % args.stems]).numpy()
    t_tails = time.perf_counter() - t
    t_exh = t_stems + t_tails
    print(f"exhaustive: {n_pairs} pairs in {t_exh:.2f} s ({n_pairs / t_exh:.0f} pairs/s; "
          f"stems {t_stems:.2f} s, tails {t_tails:.2f} s); {'faster' if t_exh < t_naive else 'SLOWER'} "
          f"than the naive {args.naive}")

    x1 = hs[:1, None]
    with torch.no_grad():
        model.sources["harmonic"](x1)
        t_src = min(_timed(lambda: model.sources["harmonic"](x1)) for _ in range(3))
    gflop = sourcenet_flops(frames=args.frames, width=args.width) / 1e9
    achieved = gflop / t_src
    print(f"SourceNet pass: {gflop:.1f} GFLOP in {t_src:.3f} s = {achieved:.1f} GFLOP/s, "
          f"{100 * achieved / peak:.0f} % of the matmul peak")
    result = {
        "frames": args.frames, "width": args.width, "threads": args.threads, "matmul_peak_gflops": peak,
        "naive": {"candidates": args.naive, "seconds": t_naive},
        "factorised": {"candidates": args.naive, "seconds": t_fact, "speedup": t_naive / t_fact, "max_abs_diff": diff},
        "exhaustive": {"pairs": n_pairs, "seconds": t_exh, "pairs_per_second": n_pairs / t_exh},
        "sourcenet": {"gflop": gflop, "seconds": t_src, "gflops": achieved, "share_of_peak": achieved / peak},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
