"""128-bin log-mel spectrograms: the input of PreMixNet and PostMixNet.

The paper gives only "the 128-bin mel-spectrogram" of ~30 s clips; sample
rate, FFT size and hop are ours and written down in :class:`FeatureConfig`.
The default is CPU-friendly (16 kHz, n_fft 1024, hop 512, a 10 s crop →
313 frames); :meth:`FeatureConfig.paper` gives the paper's 30 s input
(22.05 kHz, n_fft 2048, hop 512 → 1292 frames) one call away.

Layout: one spectrogram is a float32 array of shape ``(n_frames, 128)``:
time first, mel second, because the networks pool along time with (2, 1)
and their head's (3, 128) kernel spans all mel bins of three frames.

Scale: ``log(mel_power + 1e-5)`` (natural log) of the power mel spectrogram
of the float audio (−1..1), *without* per-clip normalisation, so that a
quiet stem stays quiet next to a loud one — the balance of the mix is part
of what the model judges. Silence maps to log(1e-5) ≈ −11.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from generation.conditions import ROLES  # also the PreMixNet channel order
from scoring.errors import ScoringError

N_MELS = 128
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes a (n_frames, 128) log-mel array.

    sr: sample rate in Hz the audio is resampled to; n_fft, hop_length: STFT
    size and hop in samples; crop_s: the seconds of audio each example is
    cut (or zero-padded) to; n_mels: mel bins (the paper's 128); fmax_hz:
    top mel frequency (None = sr / 2).
    """

    sr: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    crop_s: float = 10.0
    n_mels: int = N_MELS
    fmax_hz: float | None = None

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft <= 0 or self.hop_length <= 0:
            raise ScoringError(f"sr, n_fft and hop_length must be positive, got {self}")
        if self.crop_s <= 0:
            raise ScoringError(f"crop_s must be positive, got {self.crop_s}")
        if self.n_mels != N_MELS:
            raise ScoringError(f"the networks expect {N_MELS} mel bins, got n_mels={self.n_mels}")

    @classmethod
    def paper(cls) -> "FeatureConfig":
        """The paper-size input: 30 s at 22.05 kHz, n_fft 2048, hop 512 (1292 frames)."""
        return cls(sr=22050, n_fft=2048, hop_length=512, crop_s=30.0)

    @classmethod
    def pitch_band(cls) -> "FeatureConfig":
        """The small CPU recipe: 16 kHz, n_fft 2048 (7.8 Hz bins), hop 512, mel bins up to 1 kHz, 3 s crops.

        All 128 bins sit where fundamentals and low partials live (about 6 Hz
        per bin at 200 Hz), so a small network can hear a vocal clash with the
        chords of another key. Measured on generated songs (PostMixNet width
        0.125, 48 training songs, 8 crops per candidate): held-out accuracy
        84–88 % with the full band (8 kHz or 2 kHz), 97 % with this one; the
        key-mismatched negatives were the ones the full band missed.
        """
        return cls(sr=16000, n_fft=2048, hop_length=512, crop_s=3.0, fmax_hz=1000.0)

    @property
    def crop_samples(self) -> int:
        """Samples in one crop at ``sr``."""
        return int(round(self.crop_s * self.sr))

    @property
    def n_frames(self) -> int:
        """Frames of one crop (centred STFT: 1 + crop_samples // hop_length)."""
        return 1 + self.crop_samples // self.hop_length

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints and JSON sidecars."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise ScoringError(f"bad feature config {data!r}: {exc}") from exc


def _check_audio(audio: np.ndarray, *, sr: int) -> np.ndarray:
    """Validated mono float32 copy of ``audio`` (shape (n,) or (channels, n))."""
    if sr <= 0:
        raise ScoringError(f"sr must be positive, got {sr}")
    x = np.asarray(audio)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ScoringError(f"audio must be (n,) or (channels, n), got shape {np.shape(audio)}")
    if x.size == 0:
        raise ScoringError("audio is empty")
    if not np.issubdtype(x.dtype, np.floating):
        raise ScoringError(f"audio must be floating point in -1..1, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ScoringError("audio contains NaN or infinite samples")
    return x.astype(np.float32)


def prepare_audio(audio: np.ndarray, *, sr: int, config: FeatureConfig, offset_s: float = 0.0) -> np.ndarray:
    """Mono audio at ``config.sr``, cut to ``config.crop_s`` seconds from ``offset_s``.

    Audio shorter than the crop is zero-padded at the end (a 25 s mashup at the
    paper's 30 s crop); returns float32 of shape (config.crop_samples,).
    """
    x = _check_audio(audio, sr=sr)
    if offset_s < 0:
        raise ScoringError(f"offset_s must be ≥ 0, got {offset_s}")
    if sr != config.sr:
        import librosa

        x = librosa.resample(x, orig_sr=sr, target_sr=config.sr).astype(np.float32)
    start = int(round(offset_s * config.sr))
    if start >= x.size:
        raise ScoringError(f"offset_s={offset_s} lies beyond the audio ({x.size / config.sr:.2f} s)")
    x = x[start : start + config.crop_samples]
    if x.size < config.crop_samples:
        x = np.pad(x, (0, config.crop_samples - x.size))
    return x


def log_mel(audio: np.ndarray, *, sr: int, config: FeatureConfig | None = None, offset_s: float = 0.0) -> np.ndarray:
    """Log-mel spectrogram of one crop, float32 of shape (config.n_frames, 128).

    ``audio``: float samples in −1..1, shape (n,) or (channels, n) (channels are
    averaged), at ``sr`` Hz; it is resampled to ``config.sr`` and cropped as in
    :func:`prepare_audio`.
    """
    import librosa

    cfg = config or FeatureConfig()
    x = prepare_audio(audio, sr=sr, config=cfg, offset_s=offset_s)
    mel = librosa.feature.melspectrogram(
        y=x, sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        fmax=cfg.fmax_hz, power=2.0, center=True,
    )
    out = np.log(mel + LOG_FLOOR).T.astype(np.float32)
    if out.shape != (cfg.n_frames, cfg.n_mels):  # pragma: no cover - librosa contract
        raise ScoringError(f"unexpected mel shape {out.shape}, wanted {(cfg.n_frames, cfg.n_mels)}")
    return out


def stem_features(
    stems: dict[str, np.ndarray], *, sr: int, config: FeatureConfig | None = None, offset_s: float = 0.0
) -> np.ndarray:
    """PreMixNet input for one candidate: float32 (3, n_frames, 128), roles in ROLES order.

    ``stems`` maps 'vocal', 'harmonic', 'percussion' to audio arrays at ``sr``.
    """
    missing = [r for r in ROLES if r not in stems]
    if missing:
        raise ScoringError(f"stems lack role(s) {missing}; need {list(ROLES)}")
    return np.stack([log_mel(stems[r], sr=sr, config=config, offset_s=offset_s) for r in ROLES])


def mix_features(
    stems: dict[str, np.ndarray], *, sr: int, config: FeatureConfig | None = None, offset_s: float = 0.0
) -> np.ndarray:
    """PostMixNet input for one candidate: float32 (1, n_frames, 128) of the summed stems.

    The stems are summed sample by sample (shorter ones zero-padded), as the
    renderer mixes them; no gain is applied.
    """
    if not stems:
        raise ScoringError("no stems to mix")
    monos = [_check_audio(a, sr=sr) for a in stems.values()]
    n = max(m.size for m in monos)
    mix = np.zeros(n, dtype=np.float32)
    for m in monos:
        mix[: m.size] += m
    return log_mel(mix, sr=sr, config=config, offset_s=offset_s)[None]
