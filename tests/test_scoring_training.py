"""Training loop, checkpoints, determinism, and the Table 1 metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scoring.errors import ScoringError
from scoring.evaluation import (
    average_rank,
    labeled_accuracy,
    positive_ranks,
    retrieval_metrics,
    table1_row,
    unlabeled_subset_effect,
)
from scoring.features import FeatureConfig
from scoring.nets import predict
from scoring.training import load_checkpoint, split_by_group, train_model

FRAMES = 32
TINY = 0.125


def synthetic_candidates(*, n_seeds: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel-like (N, 3, 32, 128) examples, 3 per vocal seed: positive, negative, unlabeled.

    Each seed has its own "key" (three mel bands) and its own beat phase.
    Positive: the harmonic stem sounds in the vocal's bands and the
    percussion hits land on the vocal's onsets. Negative: the harmonic stem
    sits 9 bins away and the hits fall between onsets. Unlabeled: a mix of the two.
    """
    rng = np.random.default_rng(seed)
    xs, ys, gs = [], [], []
    for s in range(n_seeds):
        bands = rng.choice(np.arange(10, 100), size=3, replace=False)
        phase = int(rng.integers(0, 4))
        onsets = np.arange(phase, FRAMES, 8)

        def example(h_shift: int, p_shift: int) -> np.ndarray:
            x = rng.normal(-8.0, 0.5, size=(3, FRAMES, 128)).astype(np.float32)
            for t in onsets:
                x[0, t : t + 5, bands] += 6.0
            x[1][:, np.clip(bands + h_shift, 0, 127)] += 5.0
            for t in onsets:
                x[2, (t + p_shift) % FRAMES, :] += 6.0
            return x

        for label, (dh, dp) in ((1, (0, 0)), (0, (9, 4)), (-1, (0, 4))):
            xs.append(example(dh, dp))
            ys.append(label)
            gs.append(f"seed{s}")
    return np.stack(xs), np.array(ys), np.array(gs)


@pytest.fixture(scope="module")
def data():
    return synthetic_candidates(n_seeds=40, seed=0)


def test_split_keeps_each_vocal_seed_on_one_side_at_four_to_one(data):
    _, _, groups = data
    tr, va = split_by_group(groups, seed=5)
    assert not set(groups[tr]) & set(groups[va])
    assert len(set(groups[va])) == 8 and len(set(groups[tr])) == 32
    tr2, va2 = split_by_group(groups, seed=5)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, split_by_group(groups, seed=6)[1])


def test_a_tiny_premix_learns_to_separate_positives_from_negatives(data, tmp_path):
    torch.set_num_threads(2)
    x, y, g = data
    result = train_model(arch="premix", width=TINY, features=x, labels=y, groups=g, epochs=6, seed=0,
                         lsro=True, out_dir=tmp_path, batch_size=8, lr=1e-3, progress=False)
    val_groups = set(result.val_groups)
    held = np.array([gi in val_groups for gi in g]) & (y != -1)
    scores = predict(result.model, x[held])
    acc = labeled_accuracy(scores=scores, labels=y[held])
    print(f"held-out accuracy on {held.sum()} labeled synthetic candidates: {acc:.3f}")
    assert acc >= 0.9
    kept = result.history[result.best_epoch - 1]
    assert kept["val_accuracy"] == pytest.approx(acc)  # the model returned is the epoch kept
    assert len(result.history) == 6


def test_sidecar_records_arguments_seed_data_hash_code_version_and_metrics(data, tmp_path):
    x, y, g = data
    cfg = FeatureConfig(crop_s=1.0)
    result = train_model(arch="postmix", width=TINY, features=x[:, :1], labels=y, groups=g, epochs=1, seed=3,
                         lsro=False, out_dir=tmp_path, feature_config=cfg, arguments={"db": "demo"},
                         progress=False)
    doc = json.loads(result.sidecar_path.read_text())
    assert doc["seed"] == 3 and doc["arguments"]["db"] == "demo" and doc["arguments"]["lsro"] is False
    assert len(doc["data_hash"]) == 64
    assert "code_version" in doc
    assert doc["feature_config"]["crop_s"] == 1.0
    assert [m["epoch"] for m in doc["metrics"]] == [1]
    assert doc["n_train"] == 64  # 32 train seeds × (positive + negative): no unlabeled without LSRO


def test_resumed_training_ends_where_an_uninterrupted_run_ends(data, tmp_path):
    x, y, g = data
    x, y, g = x[:36], y[:36], g[:36]
    kw = dict(arch="premix", width=TINY, features=x, labels=y, groups=g, seed=1, lsro=True, batch_size=6,
              progress=False)
    straight = train_model(epochs=2, out_dir=tmp_path / "a", **kw)
    train_model(epochs=1, out_dir=tmp_path / "b", **kw)
    resumed = train_model(epochs=2, out_dir=tmp_path / "b", **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_resuming_with_another_seed_is_refused(data, tmp_path):
    x, y, g = data
    kw = dict(arch="postmix", width=TINY, features=x[:18, :1], labels=y[:18], groups=g[:18], lsro=False,
              out_dir=tmp_path, progress=False)
    train_model(epochs=1, seed=1, **kw)
    with pytest.raises(ScoringError, match="seed"):
        train_model(epochs=2, seed=2, **kw)


@pytest.fixture(scope="module")
def premix_checkpoint(data, tmp_path_factory):
    x, y, g = data
    out = tmp_path_factory.mktemp("ckpt")
    return train_model(arch="premix", width=TINY, features=x[:18], labels=y[:18], groups=g[:18], epochs=1,
                       seed=0, lsro=True, out_dir=out, progress=False).checkpoint_path


def test_scores_are_deterministic_for_a_fixed_checkpoint(data, premix_checkpoint):
    x = data[0][:12]
    m1, _ = load_checkpoint(premix_checkpoint, arch="premix")
    m2, _ = load_checkpoint(premix_checkpoint, arch="premix")
    s1, s2 = predict(m1, x), predict(m2, x)
    assert np.array_equal(s1, s2)
    assert np.array_equal(s1, predict(m1, x))


def test_loading_a_checkpoint_of_the_other_architecture_is_a_clear_error(premix_checkpoint):
    with pytest.raises(ScoringError, match="holds a 'premix' model, not the expected 'postmix'"):
        load_checkpoint(premix_checkpoint, arch="postmix")


def test_missing_or_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ScoringError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ScoringError, match="cannot be read"):
        load_checkpoint(junk)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ScoringError, match="not a mashlab scoring checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_training_rejects_inputs_of_the_wrong_shape(data, tmp_path):
    x, y, g = data
    with pytest.raises(ScoringError, match="postmix needs features"):
        train_model(arch="postmix", features=x, labels=y, groups=g, epochs=1, seed=0, lsro=False,
                    out_dir=tmp_path, progress=False)
    with pytest.raises(ScoringError, match="labels must be"):
        train_model(arch="premix", features=x, labels=y + 5, groups=g, epochs=1, seed=0, lsro=False,
                    out_dir=tmp_path, progress=False)


# --- Table 1 metrics ---------------------------------------------------------------------------

SCORES = np.array([0.9, 0.2, 0.95, 0.5, 0.6, 0.4, 0.7, 0.1])
LABELS = np.array([1, 0, -1, -1, 1, 0, -1, -1])
GROUPS = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])


def test_accuracy_counts_labeled_examples_at_threshold_half():
    # labeled: 0.9→good ✓, 0.2→bad ✓, 0.6→good ✓, 0.4→bad ✓
    assert labeled_accuracy(scores=SCORES, labels=LABELS) == 1.0
    assert labeled_accuracy(scores=SCORES, labels=LABELS, threshold=0.65) == 0.75


def test_average_rank_over_the_whole_test_db_and_per_seed():
    # unlabeled scores: 0.95, 0.5, 0.7, 0.1. Positive 0.9: one above → rank 2; positive 0.6: two above → rank 3.
    assert positive_ranks(scores=SCORES, labels=LABELS).tolist() == [2.0, 3.0]
    assert average_rank(scores=SCORES, labels=LABELS) == 2.5
    # per seed: a's unlabeled 0.95, 0.5 → rank 2; b's unlabeled 0.7, 0.1 → rank 2
    assert positive_ranks(scores=SCORES, labels=LABELS, groups=GROUPS).tolist() == [2.0, 2.0]


def test_ties_count_against_the_positive():
    assert average_rank(scores=np.full(4, 0.5), labels=np.array([1, -1, -1, -1])) == 4.0


def test_table1_row_for_an_uncalibrated_system_has_no_accuracy():
    row = table1_row(system="amu", scores=SCORES * 3, labels=LABELS, calibrated=False)
    assert row["accuracy"] is None and "not a probability" in row["accuracy_note"]
    assert (row["average_rank"], row["n_labeled"], row["n_unlabeled"]) == (2.5, 4, 4)
    with pytest.raises(ScoringError, match="no positive"):
        average_rank(scores=SCORES, labels=np.where(LABELS == 1, 0, LABELS))


def test_unlabeled_subset_effect_leaves_the_subset_out_of_the_average_rank():
    # the subset: the unlabeled 0.95 (above both positives) and the labeled 0.2 (not unlabeled: ignored)
    subset = np.array([False, True, True, False, False, False, False, False])
    e = unlabeled_subset_effect(scores=SCORES, labels=LABELS, subset=subset)
    assert e["n_unlabeled"] == 1 and e["mean_score"] == 0.95
    assert e["mean_score_others"] == pytest.approx((0.5 + 0.7 + 0.1) / 3)
    # left: unlabeled 0.5, 0.7, 0.1; positive 0.9 → rank 1, positive 0.6 → rank 2
    assert e["average_rank_without"] == 1.5 and average_rank(scores=SCORES, labels=LABELS) == 2.5
    none = unlabeled_subset_effect(scores=SCORES, labels=LABELS, subset=np.zeros(8, bool))
    assert none["n_unlabeled"] == 0 and none["mean_score"] is None and none["average_rank_without"] == 2.5
    every = unlabeled_subset_effect(scores=SCORES, labels=LABELS, subset=LABELS == -1)
    assert every["n_unlabeled"] == 4 and every["average_rank_without"] is None
    with pytest.raises(ScoringError, match="subset must match"):
        unlabeled_subset_effect(scores=SCORES, labels=LABELS, subset=np.zeros(3, bool))


def test_retrieval_metrics_rank_each_original_among_its_own_seeds_candidates():
    scores = np.concatenate([SCORES, [0.8, 0.3, 0.9]])
    labels = np.concatenate([LABELS, [1, -1, 1]])
    groups = np.concatenate([GROUPS, ["c", "c", "d"]])  # d has no unlabeled candidate: left out
    m = retrieval_metrics(scores=scores, labels=labels, groups=groups)
    # ranks: a 2 of 3, b 2 of 3, c 1 of 2
    assert (m["n_queries"], m["n_skipped"]) == (3, 1)
    assert m["recall_at"] == {"1": pytest.approx(1 / 3), "5": 1.0, "10": 1.0}
    assert m["mean_rank"] == pytest.approx(5 / 3) and m["median_rank"] == 2.0
    assert m["median_normalised_rank"] == pytest.approx(2 / 3)
    assert m["mean_normalised_rank"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["mean_pool"] == pytest.approx(8 / 3)
    with pytest.raises(ScoringError, match="no vocal seed"):
        retrieval_metrics(scores=scores[:2], labels=np.array([1, 0]), groups=groups[:2])
