"""The antiphase headphone screening of Woods et al. (2017), generated here (numpy; no Django).

Woods, Siegel, Traer & McDermott, "Headphone screening to facilitate
web-based auditory experiments", Attention, Perception & Psychophysics 79
(2017) 2064-2072. Each trial plays three 200 Hz pure tones, one after the
other; the participant says which of the three is the quietest:

* two tones are at the reference level; one of them is played in
  **antiphase** (the right channel is the left one negated). Over headphones
  it is as loud as the reference; over loudspeakers the two channels partly
  cancel in the air, so it sounds quieter;
* one tone is 6 dB below the reference, in phase: the correct answer.

A listener on headphones hears the -6 dB tone as the quietest; one on
loudspeakers tends to pick the antiphase tone. Six trials, passed with at
least five correct (the paper's criterion; chance passes with p = 19/729,
about 2.6 %). The order of the three tones in each trial is drawn from a
seed, so a participant's screening can be generated again exactly; the
answer key stays on the server (`Trial.answer`).

Timing and shape (the paper's): each tone lasts 1 s with 100 ms raised-cosine
on and off ramps, with 0.5 s of silence between tones. Audio: 16-bit PCM
stereo WAV at `SAMPLE_RATE` Hz, the reference tone peaking at
`REFERENCE_DBFS` dBFS so that -6 dB stays far above the noise floor.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from listening.errors import ScreeningError

TONE_HZ = 200.0
TONE_S = 1.0
RAMP_S = 0.1
GAP_S = 0.5
QUIET_DB = -6.0
REFERENCE_DBFS = -12.0
SAMPLE_RATE = 16000
N_TRIALS = 6
PASS_CORRECT = 5
ROLES: tuple[str, ...] = ("reference", "antiphase", "quiet")
"""reference: in phase at the reference level; antiphase: same level, right channel negated; quiet: -6 dB."""


@dataclass(frozen=True)
class Trial:
    """One trial: the roles of its three tones in playing order (a permutation of `ROLES`)."""

    roles: tuple[str, str, str]

    @property
    def answer(self) -> int:
        """The correct answer: the position (1, 2 or 3) of the -6 dB tone."""
        return self.roles.index("quiet") + 1


@dataclass(frozen=True)
class ScreeningResult:
    """How a participant did: `correct` of `trials`, passed when at least `PASS_CORRECT`."""

    correct: int
    trials: int
    passed: bool
    answers: tuple[int, ...]


def screening_trials(*, seed: int, n_trials: int = N_TRIALS) -> list[Trial]:
    """`n_trials` trials, each a random order of the three tones drawn from `seed` (>= 0)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScreeningError(f"the screening seed must be a whole number of at least 0, got {seed!r}")
    if n_trials < 1:
        raise ScreeningError(f"a screening needs at least 1 trial, got {n_trials}")
    rng = np.random.default_rng([int(seed), 2017])
    return [Trial(tuple(ROLES[i] for i in rng.permutation(3))) for _ in range(n_trials)]


def tone(*, sample_rate: int = SAMPLE_RATE, level_db: float = 0.0, antiphase: bool = False) -> np.ndarray:
    """One 200 Hz tone of `TONE_S` seconds with raised-cosine ramps: float32 array (frames, 2) in -1..1.

    level_db: relative to the reference level (`REFERENCE_DBFS` peak).
    antiphase: the right channel is the left one negated.
    """
    n = int(round(TONE_S * sample_rate))
    t = np.arange(n) / sample_rate
    y = np.sin(2 * np.pi * TONE_HZ * t)
    ramp = int(round(RAMP_S * sample_rate))
    window = np.ones(n)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    window[:ramp], window[n - ramp:] = rise, rise[::-1]
    y = y * window * 10 ** ((REFERENCE_DBFS + level_db) / 20)
    return np.stack([y, -y if antiphase else y], axis=1).astype(np.float32)


def trial_audio(trial: Trial, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The trial's three tones with `GAP_S` of silence between them: float32 (frames, 2)."""
    gap = np.zeros((int(round(GAP_S * sample_rate)), 2), dtype=np.float32)
    parts = []
    for i, role in enumerate(trial.roles):
        if i:
            parts.append(gap)
        parts.append(tone(sample_rate=sample_rate, level_db=QUIET_DB if role == "quiet" else 0.0,
                          antiphase=role == "antiphase"))
    return np.concatenate(parts)


def trial_wav(trial: Trial, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The trial as a 16-bit PCM stereo WAV file (bytes), as served to the participant."""
    buf = io.BytesIO()
    sf.write(buf, trial_audio(trial, sample_rate=sample_rate), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def pass_mark(n_trials: int) -> int:
    """Correct answers needed to pass `n_trials` trials: 5 of 6 (the paper), scaled up for other counts."""
    return -(-PASS_CORRECT * n_trials // N_TRIALS)


def score_screening(trials: Sequence[Trial], answers: Sequence[int]) -> ScreeningResult:
    """Score one answer per trial (1, 2 or 3: the tone picked as quietest); passed at `PASS_CORRECT` or more.

    Another trial count scales the pass mark (`pass_mark`).
    """
    if len(answers) != len(trials):
        raise ScreeningError(f"{len(trials)} answers expected, got {len(answers)}")
    if any(a not in (1, 2, 3) for a in answers):
        raise ScreeningError("each answer is 1, 2 or 3 (the first, second or third tone)")
    correct = sum(int(a == t.answer) for a, t in zip(answers, trials))
    return ScreeningResult(correct=correct, trials=len(trials), passed=correct >= pass_mark(len(trials)),
                           answers=tuple(int(a) for a in answers))
