"""Peak memory of one training epoch on 1,000 and on 20,000 examples: streamed from the feature store vs in memory.

    .venv/bin/python benchmarks/train_memory.py [--small 1000] [--large 20000] [--arch postmix] [--width 0.125]
                                                [--workers 2] [--in-memory]

Each run is a fresh Python process (so ``ru_maxrss`` is that run's own peak)
that trains ``--arch`` for one epoch on synthetic log-mel features of the
pitch-band recipe (3 s crops at 16 kHz: 94 frames × 128 bins; generated
numbers, not audio: the size is what is measured). The features are written
once into a feature store under ``data/bench-train-memory`` (8 crops per
entry, as a candidate with 8 crops), then:

* **streamed** (what ``manage.py train`` does): a DataLoader over
  :class:`scoring.examples.StoredExamples` with ``--workers`` reader
  processes; the peak of the trainer plus its workers is reported;
* **in memory** (``--in-memory``, the loop before the feature store, as a
  baseline): every example stacked in one array first.

Printed: peak RSS (MB) per run and the ratio large / small per mode. The
streamed ratio should stay near 1 (the issue's bar: ≤ 1.2); the in-memory
ratio grows with the data (20 × the features at 20,000 examples).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CROPS_PER_ENTRY = 8


def make_store(root: Path, n: int, *, arch: str, seed: int) -> Path:
    """A store of ``n`` synthetic examples (``n / 8`` entries) and an index file naming them; returns the index."""
    import numpy as np

    from scoring.feature_store import FeatureStore, Recipe
    from scoring.features import FeatureConfig

    index = root / f"index-{arch}-{n}.json"
    if index.exists():
        return index
    recipe = Recipe(kind=arch, config=FeatureConfig.pitch_band(),
                    offsets_s=tuple(3.0 * k for k in range(CROPS_PER_ENTRY)))
    store = FeatureStore(root / "store")
    rng = np.random.default_rng(seed)
    entries, labels, groups, digests = [], [], [], []
    for j in range(n // CROPS_PER_ENTRY):
        x = rng.normal(-6.0, 2.0, size=recipe.shape).astype(np.float32)
        key = store.key({"synthetic": j, "seed": seed}, recipe)
        store.save(key, recipe, x)
        entries.append(str(store.path_for(key)))
        label = int(rng.integers(0, 2))
        labels += [label] * CROPS_PER_ENTRY
        groups += [j // 3] * CROPS_PER_ENTRY  # three candidates per "vocal seed"
        digests += store.crop_digests_of(key)
    index.write_text(json.dumps({"entries": entries, "labels": labels, "groups": groups, "digests": digests,
                                 "shape": list(recipe.shape[1:])}))
    return index


def run_one(index: Path, *, arch: str, width: float, workers: int, in_memory: bool, out: Path) -> dict:
    """Train one epoch (this process); returns its figures."""
    import numpy as np
    import torch

    from scoring.examples import ArrayExamples, Examples, StoredExamples
    from scoring.training import train_model

    torch.set_num_threads(2)
    doc = json.loads(index.read_text())
    stored = StoredExamples(doc["entries"], n_crops=CROPS_PER_ENTRY, example_shape=tuple(doc["shape"]),
                            labels=doc["labels"], groups=doc["groups"], digests=doc["digests"])
    t0 = time.perf_counter()
    examples: Examples
    if in_memory:
        examples = ArrayExamples(np.stack([stored.features(i) for i in range(len(stored))]),
                                 stored.labels, stored.groups)
    else:
        examples = stored
    train_model(arch=arch, examples=examples, epochs=1, seed=0, lsro=False, out_dir=out, width=width,
                batch_size=32, workers=0 if in_memory else workers, progress=False, patience=0)
    seconds = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"n": len(stored), "seconds": seconds, "peak_rss_mb": own, "worker_peak_rss_mb": children,
            "mode": "in memory" if in_memory else f"streamed ({workers} workers)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--arch", choices=["premix", "postmix"], default="postmix")
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-memory", action="store_true", help="Also run the in-memory baseline.")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "bench-train-memory")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_one(args.child, arch=args.arch, width=args.width, workers=args.workers,
                                     in_memory=args.child_memory, out=Path(tmp))))
        return
    args.data.mkdir(parents=True, exist_ok=True)
    modes = [False, True] if args.in_memory else [False]
    results: dict[tuple[bool, int], dict] = {}
    for n in (args.small, args.large):
        t0 = time.perf_counter()
        index = make_store(args.data, n, arch=args.arch, seed=n)
        print(f"store of {n} examples ready in {time.perf_counter() - t0:.1f} s", flush=True)
        for in_memory in modes:
            cmd = [sys.executable, __file__, "--child", str(index), "--arch", args.arch, "--width", str(args.width),
                   "--workers", str(args.workers)] + (["--child-memory"] if in_memory else [])
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(line)
            results[(in_memory, n)] = r
            print(f"{r['mode']:<22} {n:>7} examples: peak RSS {r['peak_rss_mb']:8.1f} MB (trainer), "
                  f"{r['worker_peak_rss_mb']:7.1f} MB (largest worker), {r['seconds']:7.1f} s", flush=True)
    for in_memory in modes:
        small, large = results[(in_memory, args.small)], results[(in_memory, args.large)]
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        print(f"{small['mode']}: peak RSS at {args.large} / at {args.small} examples = {ratio:.2f}")
    from scoring.feature_store import FeatureStore

    print(f"feature store: {FeatureStore(args.data / 'store').size_bytes() / 1e6:.0f} MB in {args.data}")


if __name__ == "__main__":
    main()
