"""Transposition of log-mel batches (scoring.augment): the shifted features are those of shifted audio."""

import json

import numpy as np
import pytest
import torch

from scoring.augment import SILENCE, band_centres_hz, random_shifts, transpose
from scoring.errors import ScoringError
from scoring.features import FeatureConfig, log_mel

SR = 16000


def _tone(hz: float, seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("config", [FeatureConfig.pitch_band(), FeatureConfig(crop_s=3.0)], ids=["pitch_band", "full"])
@pytest.mark.parametrize("semitones", [-3.0, 2.0, 5.0])
def test_transposed_features_peak_where_the_transposed_tone_does(config, semitones):
    """A 300 Hz tone's features moved by s semitones peak in the band of a 300·2^(s/12) Hz tone."""
    centres = band_centres_hz(config)
    x = torch.from_numpy(log_mel(_tone(300.0), sr=SR, config=config))[None, None]
    want = log_mel(_tone(300.0 * 2 ** (semitones / 12)), sr=SR, config=config)
    got = transpose(x, torch.tensor([semitones]), centres)[0, 0].numpy()
    mid = slice(10, -10)  # away from the crop's edges
    assert abs(int(got[mid].mean(axis=0).argmax()) - int(want[mid].mean(axis=0).argmax())) <= 1
    # and not where the untransposed tone peaks
    assert int(x[0, 0].numpy()[mid].mean(axis=0).argmax()) != int(got[mid].mean(axis=0).argmax())


def test_zero_shift_is_identity_and_every_channel_moves_together():
    centres = band_centres_hz(FeatureConfig.pitch_band())
    x = torch.randn(3, 3, 20, 128)
    assert torch.allclose(transpose(x, torch.zeros(3), centres), x, atol=1e-6)
    shifted = transpose(x, torch.tensor([0.0, 4.0, -4.0]), centres)
    assert torch.allclose(shifted[0], x[0], atol=1e-6)
    # the same channel-independent map for every channel of an example: equal channels stay equal
    same = x[:, :1].repeat(1, 3, 1, 1)
    out = transpose(same, torch.tensor([1.5, -2.5, 3.0]), centres)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_bands_shifted_in_from_outside_the_range_are_silent():
    centres = band_centres_hz(FeatureConfig.pitch_band())
    x = torch.zeros(1, 1, 10, 128)
    down = transpose(x, torch.tensor([-6.0]), centres)  # the top bands come from above the top centre
    outside = centres * 2 ** 0.5 > centres[-1] + 1e-9
    assert 30 < int(outside.sum()) < 45
    assert torch.all(down[..., outside] == SILENCE)
    assert torch.all(down[..., ~outside] == 0)


def test_shifts_are_seeded_and_bounded():
    a = random_shifts(500, max_semitones=2.0, generator=torch.Generator().manual_seed(3))
    b = random_shifts(500, max_semitones=2.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and float(a.abs().max()) <= 2.0 and float(a.std()) > 0.5


def test_bad_shapes_are_errors():
    centres = band_centres_hz(FeatureConfig.pitch_band())
    with pytest.raises(ScoringError, match="one shift per example"):
        transpose(torch.zeros(2, 1, 10, 128), torch.zeros(3), centres)
    with pytest.raises(ScoringError, match="expects"):
        transpose(torch.zeros(2, 10, 128), torch.zeros(2), centres)
    with pytest.raises(ScoringError, match="max_semitones"):
        random_shifts(2, max_semitones=-1.0, generator=torch.Generator())


def test_training_with_transposition_is_seeded_recorded_and_changes_the_weights(tmp_path):
    """The same seed gives the same weights with augmentation on; the shift is recorded and does act."""
    from scoring.training import train_model
    from tests.test_scoring_training import TINY, synthetic_candidates

    x, y, g = synthetic_candidates(n_seeds=8, seed=3)
    kw = dict(arch="premix", width=TINY, features=x, labels=y, groups=g, epochs=2, seed=5, lsro=False,
              batch_size=6, progress=False, patience=0)
    a = train_model(out_dir=tmp_path / "a", transpose_semitones=4.0, **kw)
    b = train_model(out_dir=tmp_path / "b", transpose_semitones=4.0, **kw)
    plain = train_model(out_dir=tmp_path / "plain", **kw)
    wa, wb, wp = a.model.state_dict(), b.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wp[k]) for k in wa)
    recorded = [json.loads(r.sidecar_path.read_text())["arguments"]["transpose_semitones"] for r in (a, plain)]
    assert recorded == [4.0, 0.0]
    with pytest.raises(ScoringError, match="0..12"):
        train_model(out_dir=tmp_path / "c", transpose_semitones=13.0, **kw)
