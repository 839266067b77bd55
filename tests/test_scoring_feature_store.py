"""The feature store, the streamed training loop, and keeping the best epoch (issue 11 §4, §5).

Synthetic log-mel-like examples (tests/test_scoring_training.py's
generator: a fixture with ground truth, not audio) keep these fast; the
pipeline test trains on real generated songs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scoring.examples import ArrayExamples, StoredExamples
from scoring.feature_store import FeatureStore, Recipe
from scoring.features import FeatureConfig
from scoring.training import LAST_NAME, load_checkpoint, read_checkpoint, train_model
from tests.test_scoring_training import FRAMES, TINY, synthetic_candidates

CFG = FeatureConfig(sr=16000, n_fft=1024, hop_length=512, crop_s=(FRAMES - 1) * 512 / 16000)
N_CROPS = 3


@pytest.fixture(scope="module")
def data():
    return synthetic_candidates(n_seeds=12, seed=4)


def _recipe(kind: str = "premix", offsets=(0.0, 1.0, 2.0), config: FeatureConfig = CFG) -> Recipe:
    return Recipe(kind=kind, config=config, offsets_s=tuple(offsets))


def _stored(data, root) -> StoredExamples:
    """The synthetic examples as a store would hold them: N_CROPS consecutive examples per entry."""
    x, y, g = data
    recipe = _recipe()
    store = FeatureStore(root)
    keys = []
    for j in range(len(x) // N_CROPS):
        key = store.key({"candidate": j}, recipe)
        store.save(key, recipe, x[j * N_CROPS : (j + 1) * N_CROPS])
        keys.append(key)
    return StoredExamples([store.path_for(k) for k in keys], n_crops=N_CROPS, example_shape=recipe.shape[1:],
                          labels=y, groups=g, digests=[d for k in keys for d in store.crop_digests_of(k)])


def test_streamed_and_in_memory_training_give_the_same_weights(data, tmp_path):
    x, y, g = data
    assert FRAMES == CFG.n_frames
    kw = dict(arch="premix", width=TINY, epochs=2, seed=7, lsro=True, batch_size=6, progress=False, patience=0)
    memory = train_model(examples=ArrayExamples(x, y, g), out_dir=tmp_path / "memory", **kw)
    streamed = train_model(examples=_stored(data, tmp_path / "store"), out_dir=tmp_path / "streamed", workers=2,
                           **kw)
    a, b = memory.model.state_dict(), streamed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    doc_m = json.loads(memory.sidecar_path.read_text())
    doc_s = json.loads(streamed.sidecar_path.read_text())
    assert doc_m["data_hash"] == doc_s["data_hash"]  # the same examples, however they are held
    assert doc_m["metrics"] == doc_s["metrics"]


def test_a_missing_truncated_foreign_or_corrupt_entry_is_recomputed(tmp_path, data):
    store = FeatureStore(tmp_path)
    recipe = _recipe()
    x = data[0][:N_CROPS]
    calls = []

    def compute():
        calls.append(1)
        return x

    key = store.key({"candidate": 1}, recipe)
    first, computed = store.get_or_compute(key, recipe, compute)
    assert computed and np.array_equal(first, x)
    again, computed = store.get_or_compute(key, recipe, compute)
    assert not computed and np.array_equal(again, x) and len(calls) == 1

    path = store.path_for(key)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    assert store.load(key, recipe) is None
    assert store.get_or_compute(key, recipe, compute)[1] and len(calls) == 2

    raw = bytearray(path.read_bytes())  # same size, one value changed: the checksum catches it
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert store.load(key, recipe) is None

    other = _recipe(config=FeatureConfig(**{**CFG.to_dict(), "fmax_hz": 1000.0}))  # same shape, other recipe
    store.save(key, other, x)  # a file of another recipe where this recipe's entry should be
    assert store.load(key, recipe) is None
    assert store.get_or_compute(key, recipe, compute)[1] and len(calls) == 3

    path.with_suffix(".json").unlink()  # metadata gone
    assert store.load(key, recipe) is None
    path.unlink()
    assert store.load(key, recipe) is None
    assert store.key({"candidate": 1}, other) != key and store.key({"candidate": 2}, recipe) != key


def test_the_store_reports_its_size_and_can_be_cleared(tmp_path, data):
    store = FeatureStore(tmp_path / "f")
    assert store.size_bytes() == 0
    recipe = _recipe()
    for j in range(3):
        store.save(store.key({"candidate": j}, recipe), recipe, data[0][j * 3 : j * 3 + 3])
    assert store.size_bytes() >= 3 * data[0][:3].nbytes
    assert store.clear() == 3 and store.size_bytes() == 0


def test_an_entry_of_the_wrong_shape_is_refused(tmp_path, data):
    store = FeatureStore(tmp_path)
    with pytest.raises(Exception, match="shape"):
        store.save("ab" * 32, _recipe(kind="postmix"), data[0][:N_CROPS])


def test_the_epoch_with_the_lowest_validation_loss_is_kept_and_training_stops_early(data, tmp_path):
    x, y, g = data
    torch.set_num_threads(2)
    result = train_model(arch="premix", width=TINY, features=x, labels=y, groups=g, epochs=40, seed=2,
                         lsro=False, batch_size=6, lr=3e-3, patience=1, out_dir=tmp_path, progress=False)
    losses = [h["val_loss"] for h in result.history]
    best = int(np.argmin(losses)) + 1
    print(f"\nval loss per epoch: {[round(v, 3) for v in losses]}; kept {result.best_epoch}")
    assert result.best_epoch == best
    assert result.stopped_early and len(result.history) == best + 1 < 40
    kept = read_checkpoint(result.checkpoint_path)
    assert kept["epoch"] == best
    assert read_checkpoint(tmp_path / LAST_NAME)["epoch"] == len(result.history)
    model, _ = load_checkpoint(result.checkpoint_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k]), k
    doc = json.loads(result.sidecar_path.read_text())
    assert doc["best_epoch"] == best and doc["stopped_early"] is True
    resumed = train_model(arch="premix", width=TINY, features=x, labels=y, groups=g, epochs=40, seed=2,
                          lsro=False, batch_size=6, lr=3e-3, patience=1, out_dir=tmp_path, progress=False)
    assert len(resumed.history) == len(result.history)  # a stopped run stays stopped


def test_checkpoints_carry_the_crops_they_score_with(data, tmp_path):
    x, y, g = data
    result = train_model(arch="postmix", width=TINY, features=x[:, :1], labels=y, groups=g, epochs=1, seed=0,
                         lsro=False, out_dir=tmp_path, feature_config=CFG, crop_offsets_s=[0.0, 3.0, 6.0],
                         progress=False)
    state = read_checkpoint(result.checkpoint_path)
    assert state["scoring"]["crop_offsets_s"] == [0.0, 3.0, 6.0]
    assert state["feature_config"] == CFG.to_dict()
    assert float(state["model_state"]["input_std"]) > 0


def test_asking_for_cuda_without_it_is_a_clear_error(data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    x, y, g = data
    with pytest.raises(Exception, match="no CUDA"):
        train_model(arch="premix", width=TINY, features=x, labels=y, groups=g, epochs=1, seed=0, lsro=False,
                    out_dir=tmp_path, device="cuda", progress=False)
