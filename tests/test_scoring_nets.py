"""Shapes, parameter counts, LSRO loss, features and the factorised PreMixNet scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scoring.errors import ScoringError
from scoring.factorised import role_terms, score_crops
from scoring.features import FeatureConfig, log_mel, mix_features, stem_features
from scoring.losses import balanced_class_weights, lsro_cross_entropy, lsro_targets
from scoring.nets import (
    ROLES,
    PostMixNet,
    PreMixNet,
    SourceNet,
    build_model,
    count_parameters,
    predict,
    randomise_batchnorm,
)

TINY = 0.125  # filters 8, 8, 16, 16; head 32; FC 16


def _source_params(f1: int, f2: int) -> int:
    """Four bias-free 3×3 convs (1→f1→f1, f1→f2→f2) plus BatchNorm γ, β of each."""
    convs = 9 * (1 * f1 + f1 * f1 + f1 * f2 + f2 * f2)
    return convs + 2 * (f1 + f1 + f2 + f2)


def _head_params(in_ch: int, c: int, h: int, n_mels: int = 128) -> int:
    """Conv (3, n_mels) in_ch→c, conv (3, 1) c→c, two BatchNorms, FC c→h, h→h, h→2 (with biases)."""
    return 3 * n_mels * in_ch * c + 3 * c * c + 2 * (2 * c) + (c * h + h) + (h * h + h) + (h * 2 + 2)


def test_parameter_counts_at_paper_size_match_hand_derivation():
    src = _source_params(64, 128)
    assert src == 259_392
    pre, post = build_model("premix"), build_model("postmix")
    assert count_parameters(pre) == 3 * src + _head_params(3 * 128, 256, 128)
    assert count_parameters(post) == src + _head_params(128, 256, 128)
    assert count_parameters(pre) == 38_774_210
    # the (3, 128) kernel over 384 channels dominates PreMixNet
    assert pre.head.block.conv1.weight.numel() == 3 * 128 * 384 * 256


def test_parameter_counts_at_tiny_width_match_hand_derivation():
    pre = build_model("premix", width=TINY)
    assert count_parameters(pre) == 3 * _source_params(8, 16) + _head_params(48, 32, 16)


def test_source_net_halves_time_twice_and_keeps_mel_bins():
    z = SourceNet(width=TINY)(torch.randn(2, 1, 40, 128))
    assert z.shape == (2, 16, 10, 128)


def test_premix_and_postmix_give_two_logits_per_example():
    torch.manual_seed(0)
    assert PreMixNet(width=TINY)(torch.randn(3, 3, 40, 128)).shape == (3, 2)
    assert PostMixNet(width=TINY)(torch.randn(3, 1, 40, 128)).shape == (3, 2)


def test_head_block_collapses_mel_axis_and_halves_time():
    model = PreMixNet(width=TINY)
    out = model.head.block(torch.randn(2, 48, 10, 128))
    assert out.shape == (2, 32, 5, 1)


def test_premix_roles_have_separate_weights():
    model = PreMixNet(width=TINY)
    w = [model.sources[r].block1.conv1.weight for r in ROLES]
    assert len({p.data_ptr() for p in w}) == 3
    assert not torch.equal(w[0], w[1])


def test_it_rejects_wrong_input_shapes():
    model = PreMixNet(width=TINY)
    with pytest.raises(ScoringError, match="expects input"):
        model(torch.randn(2, 1, 40, 128))
    with pytest.raises(ScoringError, match="frames"):
        model(torch.randn(2, 3, 4, 128))
    with pytest.raises(ScoringError, match="unknown architecture"):
        build_model("midmix")


def test_lsro_loss_equals_hand_computed_value():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [0.5, 1.5], [3.0, 0.0]])
    labels = torch.tensor([1, 0, -1, 1])

    def log_softmax(a: float, b: float) -> tuple[float, float]:
        z = math.log(math.exp(a) + math.exp(b))
        return a - z, b - z

    # good = column 1; bad = column 0; unlabeled = (0.5, 0.5)
    terms = [
        -log_softmax(0.0, 2.0)[1],
        -log_softmax(1.0, -1.0)[0],
        -0.5 * sum(log_softmax(0.5, 1.5)),
        -log_softmax(3.0, 0.0)[1],
    ]
    expected = sum(terms) / 4
    assert float(lsro_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
    # by hand: log(1+e^-2) = 0.126928 (twice), 0.5·(1.313262+0.313262) = 0.813262, log(1+e^3) = 3.048587
    assert expected == pytest.approx((2 * 0.126928 + 0.813262 + 3.048587) / 4, abs=1e-6)



def test_balanced_class_weights_make_both_classes_count_equally():
    labels = torch.tensor([1, 0, 0, 0, -1])
    w = balanced_class_weights(labels)
    assert w == pytest.approx({1: 4 / 2, 0: 4 / 6})  # one positive and three negatives: 2 vs 2/3 each
    assert w[1] * 1 == pytest.approx(w[0] * 3)  # equal totals
    assert balanced_class_weights(torch.tensor([1, 1, -1])) == {}  # one labeled class absent: no weighting

    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [3.0, 0.0], [0.0, 3.0], [0.5, 1.5]])
    per = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(-3.0)),
           math.log(1 + math.exp(3.0)), 0.5 * (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(-1.0)))]
    weights = [2.0, 2 / 3, 2 / 3, 2 / 3, 1.0]
    expected = sum(w_ * p for w_, p in zip(weights, per)) / sum(weights)
    assert float(lsro_cross_entropy(logits, labels, class_weights=w)) == pytest.approx(expected, rel=1e-6)
    assert float(lsro_cross_entropy(logits, labels)) == pytest.approx(sum(per) / 5, rel=1e-6)

def test_lsro_targets_and_bad_labels():
    assert lsro_targets(torch.tensor([1, 0, -1])).tolist() == [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]
    with pytest.raises(ScoringError, match="labels must be 1, 0 or -1"):
        lsro_targets(torch.tensor([2]))


def test_feature_config_paper_input_is_one_setting_away():
    assert FeatureConfig().n_frames == 313
    paper = FeatureConfig.paper()
    assert (paper.sr, paper.crop_s, paper.n_frames) == (22050, 30.0, 1292)
    with pytest.raises(ScoringError):
        FeatureConfig(n_mels=64)


def test_log_mel_shape_floor_padding_and_resampling():
    cfg = FeatureConfig(sr=8000, n_fft=512, hop_length=256, crop_s=2.0)
    t = np.arange(8000 * 3) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    m = log_mel(tone, sr=8000, config=cfg)
    assert m.shape == (cfg.n_frames, 128)
    # a 440 Hz tone puts its energy in one band of bins, far above silence
    assert m.max() > 0 > np.log(1e-5) + 1
    short = log_mel(tone[:4000], sr=8000, config=cfg)  # 0.5 s, zero-padded to 2 s
    assert np.allclose(short[-5:], np.log(1e-5), atol=1e-3)
    resampled = log_mel(np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000).astype(np.float32), sr=16000, config=cfg)
    assert resampled.shape == m.shape
    assert abs(int(resampled[10].argmax()) - int(m[10].argmax())) <= 1


def test_stem_and_mix_features_stack_roles():
    cfg = FeatureConfig(sr=8000, n_fft=512, hop_length=256, crop_s=1.0)
    rng = np.random.default_rng(0)
    stems = {r: (0.1 * rng.standard_normal(8000)).astype(np.float32) for r in ROLES}
    assert stem_features(stems, sr=8000, config=cfg).shape == (3, cfg.n_frames, 128)
    assert mix_features(stems, sr=8000, config=cfg).shape == (1, cfg.n_frames, 128)
    with pytest.raises(ScoringError, match="lack role"):
        stem_features({"vocal": stems["vocal"]}, sr=8000, config=cfg)


def test_log_mel_rejects_bad_audio():
    with pytest.raises(ScoringError, match="empty"):
        log_mel(np.zeros(0, dtype=np.float32), sr=16000)
    with pytest.raises(ScoringError, match="NaN"):
        log_mel(np.full(100, np.nan, dtype=np.float32), sr=16000)
    with pytest.raises(ScoringError, match="floating"):
        log_mel(np.zeros(100, dtype=np.int16), sr=16000)


@pytest.fixture(scope="module")
def tiny_premix() -> PreMixNet:
    torch.manual_seed(1)
    model = PreMixNet(width=TINY)
    randomise_batchnorm(model, seed=2)
    with torch.no_grad():  # larger FC weights so scores spread out
        for fc in (model.head.fc1, model.head.fc2, model.head.out):
            fc.weight.mul_(4.0)
    model.set_input_normalisation(mean=-4.0, std=3.0)
    return model.eval()


def test_factorised_scores_equal_naive_scores(tiny_premix):
    g = torch.Generator().manual_seed(3)
    t = 48
    v = torch.randn(t, 128, generator=g) * 3 - 4
    hs = torch.randn(5, t, 128, generator=g) * 3 - 4
    ps = torch.randn(4, t, 128, generator=g) * 3 - 4
    fast = score_crops(tiny_premix, v[None], hs[:, None], ps[:, None], batch_pairs=7).reshape(5, 4)  # one crop
    naive = np.array(
        [[predict(tiny_premix, torch.stack([v, hs[i], ps[j]])[None])[0] for j in range(4)] for i in range(5)]
    )
    assert fast.shape == (5, 4)
    assert np.max(np.abs(fast - naive)) < 1e-5
    assert np.ptp(naive) > 1e-2, "scores must vary across pairs for the comparison to mean something"


def test_factorised_head_split_reproduces_logits(tiny_premix):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 3, 40, 128, generator=g)
    with torch.no_grad():
        naive = tiny_premix(x)
        summed = sum(role_terms(tiny_premix, x[:, i], role=r) for i, r in enumerate(ROLES))
        split = tiny_premix.head.tail(summed)
    assert torch.allclose(split, naive, atol=1e-5)


def test_factorised_scoring_rejects_bad_input(tiny_premix):
    with pytest.raises(ScoringError, match="PreMixNet"):
        score_crops(PostMixNet(width=TINY), np.zeros((1, 40, 128)), np.zeros((2, 1, 40, 128)), np.zeros((2, 1, 40, 128)))
    with pytest.raises(ScoringError, match="same number of frames"):
        score_crops(tiny_premix, np.zeros((1, 40, 128)), np.zeros((2, 1, 48, 128)), np.zeros((2, 1, 40, 128)))
