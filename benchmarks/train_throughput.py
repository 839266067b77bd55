"""What one training epoch costs, per recipe and device: measured seconds, counted FLOPs, projected epochs.

    .venv/bin/python benchmarks/train_throughput.py [--device cpu|cuda] [--recipes cpu paper]
                                                    [--archs premix postmix] [--examples 256 8]
                                                    [--project 51507 4520] [--assume-tflops 15 100]

Why: the issue asks what a run at the paper's scale (51,507 examples, the
30 s input, width 1) would take; this measures it where it runs and projects
it where it cannot (no GPU here). For each recipe and architecture:

* **measured**: one epoch of :func:`scoring.training.train_model` (the real
  loop: normalisation statistics, training, validation, checkpoint) on
  ``--examples`` examples of generated numbers (the cost is what is measured;
  numbers, not audio), on ``--device`` (mixed precision on CUDA, as
  training does); seconds per example over the whole epoch;
* **counted**: floating-point operations of one forward and backward pass
  per example (``torch.utils.flop_counter.FlopCounterMode``);
* **projected**: an epoch over each ``--project`` count at the measured rate,
  and at each ``--assume-tflops`` sustained rate (TFLOP/s; a V100 gives about
  15 in float32, an H100 several hundred in bfloat16 at best — an assumption
  you state, not a measurement).

Recipes: ``cpu`` = the README's CPU recipe (pitch-band input, 3 s crops: 94
frames × 128 bins, width 0.125); ``paper`` = the paper's (30 s at 22.05 kHz:
1,292 frames × 128 bins, width 1). Needs only NumPy and PyTorch (no Django,
no audio stack), so a bare GPU machine runs it from a checkout:
``python3 benchmarks/train_throughput.py --device cuda --examples 4096 512``.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: recipe name -> (FeatureConfig factory name, network width)
RECIPES = {"cpu": ("pitch_band", 0.125), "paper": ("paper", 1.0)}
#: PreMixNet hears the three stems apart, PostMixNet their mix.
CHANNELS = {"premix": 3, "postmix": 1}


def flops_per_example(arch: str, *, width: float, frames: int, n_mels: int, batch: int = 2) -> float:
    """Forward + backward FLOPs of one example (counted on CPU on a batch of ``batch``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from scoring.nets import build_model

    model = build_model(arch, width=width, n_mels=n_mels)
    x = torch.randn(batch, CHANNELS[arch], frames, n_mels)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def seconds_per_example(arch: str, *, width: float, frames: int, n_mels: int, n: int, batch_size: int,
                        device: str, seed: int = 0) -> float:
    """Wall time of one epoch of :func:`train_model` on ``n`` generated examples, divided by ``n``."""
    import numpy as np

    from scoring.examples import ArrayExamples
    from scoring.training import train_model

    rng = np.random.default_rng(seed)
    x = rng.normal(-6.0, 2.0, size=(n, CHANNELS[arch], frames, n_mels)).astype(np.float32)
    labels = rng.integers(0, 2, size=n)
    groups = np.arange(n) // 3  # three candidates per "vocal seed"
    examples = ArrayExamples(x, labels, groups)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train_model(arch=arch, examples=examples, epochs=1, seed=seed, lsro=False, out_dir=out, width=width,
                    batch_size=batch_size, device=device, progress=False, patience=0)
        return (time.perf_counter() - t0) / n


def human(seconds: float) -> str:
    """Seconds as s, min, h or days, whichever reads best."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    ap.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=["cpu", "paper"])
    ap.add_argument("--archs", nargs="+", choices=sorted(CHANNELS), default=["premix", "postmix"])
    ap.add_argument("--examples", type=int, nargs="+", default=[256, 8],
                    help="examples timed per recipe, in --recipes order (the paper's recipe is slow on CPU)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--project", type=int, nargs="+", default=[51507, 4520],
                    help="example counts to project an epoch for (the paper's 51,507; our real build's 4,520)")
    ap.add_argument("--assume-tflops", type=float, nargs="*", default=[15.0, 100.0],
                    help="sustained TFLOP/s to project at (assumptions, printed as such)")
    args = ap.parse_args()

    import torch

    from scoring.features import FeatureConfig
    from scoring.training import pick_device

    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batch size {args.batch_size}")
    counts = {r: args.examples[min(i, len(args.examples) - 1)] for i, r in enumerate(args.recipes)}
    header = (f"{'recipe':<6} {'arch':<8} {'input':>10} {'GFLOP/ex':>9} {'s/ex':>8} {'TFLOP/s':>8} "
              + " ".join(f"{'epoch@' + str(p):>13}" for p in args.project)
              + " " + " ".join(f"{f'@{t:g} TF/s':>11}" for t in args.assume_tflops))
    print(header)
    for recipe in args.recipes:
        factory, width = RECIPES[recipe]
        config = getattr(FeatureConfig, factory)()
        for arch in args.archs:
            flops = flops_per_example(arch, width=width, frames=config.n_frames, n_mels=config.n_mels)
            per_example = seconds_per_example(arch, width=width, frames=config.n_frames, n_mels=config.n_mels,
                                              n=counts[recipe], batch_size=args.batch_size, device=str(device))
            measured = " ".join(f"{human(per_example * p):>13}" for p in args.project)
            assumed = " ".join(f"{human(flops * args.project[0] / (t * 1e12)):>11}" for t in args.assume_tflops)
            print(f"{recipe:<6} {arch:<8} {CHANNELS[arch]}×{config.n_frames}×{config.n_mels:<3} {flops / 1e9:9.2f} "
                  f"{per_example:8.3f} {flops / per_example / 1e12:8.3f} {measured} {assumed}", flush=True)
    print(f"(@N TF/s columns: an epoch over {args.project[0]} examples at that sustained rate, forward + backward only)")


if __name__ == "__main__":
    main()
