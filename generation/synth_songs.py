"""Generated multitrack demo songs with ground truth (key, tempo, beats, downbeats).

Why: the platform needs music it may ship and test on, with stems whose truth is
known exactly. Every song is planned from a :class:`SongSpec` (key, tempo, metre,
length, seed), its bass, chords ("other") and drums are written as MIDI and
rendered with fluidsynth (General MIDI soundfont), and its vocal is espeak-ng
speech, one word per sung beat, pitch-shifted to a chord tone of the bar. A GM
choir patch would not do as a vocal: Spleeter leaves it in the accompaniment,
whereas it separates speech mixed into music almost perfectly.

The harmony is made unambiguous for a key detector: every 4-bar phrase starts
on the tonic and contains the dominant, and minor keys take the dominant from
harmonic minor (a major V7 with the leading tone), otherwise madmom's CNN tends
to read a minor song as its relative major.

Output of :func:`render_song` in one folder: ``vocals.wav, drums.wav, bass.wav,
other.wav, mix.wav`` (44.1 kHz, stereo, 16-bit PCM; the mix is the exact integer
sum of the four stems) and ``truth.json``. Rendering is deterministic: the same
spec gives the same bytes, so a render is skipped when the folder already holds
it (checked through ``truth.json``).

Command line::

    python -m generation.synth_songs OUT_DIR --count N --seed S [--seconds 20]

No Django here; the package needs ``fluidsynth``, ``fluid-soundfont-gm`` and
``espeak-ng`` (apt) and ``mido`` (pip).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import mido
import numpy as np
import soundfile as sf

from generation.audio import SR
from generation.errors import SongError
from generation.keys import Key
from generation.tools import soundfont_hint, soundfont_problem, tool_message

__all__ = [
    "GENERATOR_VERSION",
    "SR",
    "STEM_NAMES",
    "SongError",
    "SongSpec",
    "SongTruth",
    "NoteEvent",
    "VocalEvent",
    "SongPlan",
    "demo_song_specs",
    "link_stems_folders",
    "plan_song",
    "render_song",
    "render_songs",
    "load_truth",
    "main",
]

#: Bumped whenever a change alters the rendered bytes; stored in truth.json so
#: that cached renders of an older generator are redone.
GENERATOR_VERSION = 3
#: Sample rate of every written file (Hz).
#: Stem file names (without ``.wav``), in the order the mix sums them.
STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
SOUNDFONT = Path(os.environ.get("MASHLAB_SOUNDFONT", "/usr/share/sounds/sf2/FluidR3_GM.sf2"))

_MIN_TEMPO_BPM = 40.0
_MAX_TEMPO_BPM = 240.0
_MIN_SECONDS = 4.0
_MAX_SECONDS = 600.0
_MIN_VOCAL_S = 2.0  # a late vocal still sings at least this long (s), so the vocal stem is never silent
_PEAK = 0.89  # peak of the mix and of every stem after scaling (full scale = 1)
_FADE_OUT_S = 0.05
_TAIL_S = 1.0  # MIDI is rendered this much longer than the song, then cut

# General MIDI
_DRUM_CHANNEL = 9
_KICK, _SNARE, _CLOSED_HAT, _CRASH, _RIDE = 36, 38, 42, 49, 51
_BASS_PROGRAMS = (32, 33, 34, 38)  # acoustic, finger, pick, synth bass 1
_CHORD_PROGRAMS = (0, 4, 24, 16)  # grand piano, electric piano, nylon guitar, drawbar organ

# Scales as semitones above the tonic. Minor uses harmonic minor so that V is major.
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)
# 4-bar progressions as scale-degree indices (0 = tonic); each starts on the
# tonic and holds the dominant (4) so the key is plain.
_MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4))
_MINOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (0, 5, 4, 0))

# Vocal
_WORDS = (
    "love", "night", "day", "sky", "go", "my", "way", "home", "sun", "rain",
    "high", "low", "stay", "light", "now", "you", "me", "fly", "run", "dream",
)
_ESPEAK_VOICE = "en-us+f3"
_ESPEAK_SR = 22050
# espeak-ng SSML pitch settings with range 0% (monotone); measured median f0 of
# each is taken at run time and the remainder is made up by resampling.
_ESPEAK_PITCHES_PERCENT = (-20, 0, 25, 50, 75)
_VOCAL_LOW_MIDI = 50  # D3
_VOCAL_HIGH_MIDI = 62  # D4
_VOCAL_REST_PROBABILITY = 0.15
_VIBRATO_HZ = 5.5
_VIBRATO_SEMITONES = 0.35

# Loudness balance (RMS before the common peak gain)
_STEM_RMS = {"vocals": 0.10, "drums": 0.08, "bass": 0.08, "other": 0.06}



# ---------------------------------------------------------------------------
# Specs and truth
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SongSpec:
    """What to render: a song in `key` at `tempo_bpm` with `beats_per_bar` (3 or 4).

    `seconds` is the length of every written file; `seed` drives every random
    choice (progression, instruments, patterns, melody, words, start offset).
    `name` becomes the folder name and must be a plain file name.
    `vocal_entry_s` (seconds, default 0): the vocal is silent before its first
    downbeat at or after this time, as in songs whose intro has no voice (the
    case `ingest --segment auto` must handle); the accompaniment and every
    random choice stay as they are for the same seed.
    """

    name: str
    key: Key
    tempo_bpm: float
    beats_per_bar: int
    seconds: float
    seed: int
    vocal_entry_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise SongError(f"song name must be a plain file name, got {self.name!r}")
        if not isinstance(self.key, Key):
            raise SongError(f"key must be a generation.keys.Key, got {type(self.key).__name__}")
        if not _MIN_TEMPO_BPM <= float(self.tempo_bpm) <= _MAX_TEMPO_BPM:
            raise SongError(f"tempo_bpm must be in {_MIN_TEMPO_BPM:g}..{_MAX_TEMPO_BPM:g}, got {self.tempo_bpm}")
        if self.beats_per_bar not in (3, 4):
            raise SongError(f"beats_per_bar must be 3 or 4, got {self.beats_per_bar}")
        if not _MIN_SECONDS <= float(self.seconds) <= _MAX_SECONDS:
            raise SongError(f"seconds must be in {_MIN_SECONDS:g}..{_MAX_SECONDS:g}, got {self.seconds}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise SongError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not 0.0 <= float(self.vocal_entry_s) <= float(self.seconds) - _MIN_VOCAL_S:
            raise SongError(f"vocal_entry_s must be in 0..seconds - {_MIN_VOCAL_S:g} s, got {self.vocal_entry_s}")

    def to_dict(self) -> dict:
        """JSON-ready form (key as its label); `vocal_entry_s` only when it is set, so older truth files match."""
        data = {
            "name": self.name,
            "key": self.key.label,
            "tempo_bpm": float(self.tempo_bpm),
            "beats_per_bar": int(self.beats_per_bar),
            "seconds": float(self.seconds),
            "seed": int(self.seed),
        }
        if self.vocal_entry_s:
            data["vocal_entry_s"] = float(self.vocal_entry_s)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SongSpec":
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                name=str(data["name"]),
                key=Key.parse(str(data["key"])),
                tempo_bpm=float(data["tempo_bpm"]),
                beats_per_bar=int(data["beats_per_bar"]),
                seconds=float(data["seconds"]),
                seed=int(data["seed"]),
                vocal_entry_s=float(data.get("vocal_entry_s", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SongError(f"invalid song spec {data!r}: {exc}") from exc


@dataclass(frozen=True)
class SongTruth:
    """A rendered song: its spec, the ground truth and where its files are.

    `beats` and `downbeats` are times in seconds from the start of the files;
    the first beat is a downbeat at `start_s` (a small seeded lead-in).
    """

    spec: SongSpec
    start_s: float
    beats: tuple[float, ...]
    downbeats: tuple[float, ...]
    out_dir: Path
    sr: int = SR
    generator_version: int = GENERATOR_VERSION

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> Key:
        return self.spec.key

    @property
    def tempo_bpm(self) -> float:
        return float(self.spec.tempo_bpm)

    @property
    def beats_per_bar(self) -> int:
        return self.spec.beats_per_bar

    @property
    def seconds(self) -> float:
        return float(self.spec.seconds)

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def stem_paths(self) -> dict[str, Path]:
        """{'vocals'|'drums'|'bass'|'other': path to the stem's WAV}."""
        return {stem: self.out_dir / f"{stem}.wav" for stem in STEM_NAMES}

    @property
    def mix_path(self) -> Path:
        return self.out_dir / "mix.wav"

    @property
    def truth_path(self) -> Path:
        return self.out_dir / "truth.json"

    def to_dict(self) -> dict:
        """The content of ``truth.json``."""
        return {
            **self.spec.to_dict(),
            "start_s": self.start_s,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "sr": self.sr,
            "stems": {stem: f"{stem}.wav" for stem in STEM_NAMES},
            "mix": "mix.wav",
            "generator_version": self.generator_version,
        }


def load_truth(out_dir: Path) -> SongTruth:
    """Read ``out_dir/truth.json`` written by :func:`render_song`."""
    path = Path(out_dir) / "truth.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SongError(f"{path}: cannot read song truth: {exc}") from exc
    try:
        return SongTruth(
            spec=SongSpec.from_dict(data),
            start_s=float(data["start_s"]),
            beats=tuple(float(t) for t in data["beats"]),
            downbeats=tuple(float(t) for t in data["downbeats"]),
            out_dir=Path(out_dir),
            sr=int(data["sr"]),
            generator_version=int(data.get("generator_version", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SongError(f"{path}: invalid song truth: {exc}") from exc


def demo_song_specs(
    *,
    count: int,
    seed: int,
    seconds: float = 20.0,
    tempo_range_bpm: tuple[float, float] = (70.0, 160.0),
) -> list[SongSpec]:
    """`count` song specs spread over keys, modes, metres and tempi.

    Modes alternate (major, minor, ...), metres follow a period of 4 so that
    every (mode, metre) pair occurs once in any 4 consecutive songs, tonics run
    through a seeded permutation of the 12 pitch classes (so 24 songs cover all
    24 keys), and tempi are stratified over `tempo_range_bpm` (one per equal
    slice, in seeded order, rounded to 0.1 BPM). Per-song seeds derive from `seed`.
    """
    if count < 1:
        raise SongError(f"count must be >= 1, got {count}")
    lo, hi = (float(v) for v in tempo_range_bpm)
    if not _MIN_TEMPO_BPM <= lo <= hi <= _MAX_TEMPO_BPM:
        raise SongError(f"tempo_range_bpm must lie in {_MIN_TEMPO_BPM:g}..{_MAX_TEMPO_BPM:g} with low <= high, got {tempo_range_bpm}")
    rng = np.random.default_rng(seed)
    tonic_orders = [rng.permutation(12) for _ in range(2)]
    slices = rng.permutation(count)
    jitter = rng.uniform(0.0, 1.0, size=count)
    song_seeds = rng.integers(0, 2**31 - 1, size=count)
    specs = []
    for i in range(count):
        mode = ("major", "minor")[i % 2]
        tonic = int(tonic_orders[i % 2][(i // 2) % 12])
        beats_per_bar = 4 if (i // 2) % 2 == 0 else 3
        tempo = float(round(lo + (hi - lo) * (slices[i] + jitter[i]) / count, 1))
        key = Key(tonic, mode)
        specs.append(
            SongSpec(
                name=f"song{i:03d}",
                key=key,
                tempo_bpm=tempo,
                beats_per_bar=beats_per_bar,
                seconds=float(seconds),
                seed=int(song_seeds[i]),
            )
        )
    return specs


# ---------------------------------------------------------------------------
# Planning: the notes of a song (pure, no rendering)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteEvent:
    """One MIDI note: onset and length in seconds, MIDI pitch, velocity 1..127."""

    onset_s: float
    duration_s: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class VocalEvent:
    """One sung word: onset (s), the longest it may last (s), MIDI pitch, gain 0..1."""

    onset_s: float
    max_duration_s: float
    word: str
    pitch: int
    gain: float


@dataclass(frozen=True)
class SongPlan:
    """Everything a render needs: notes per stem, programs, the beat grid."""

    spec: SongSpec
    start_s: float
    beats: tuple[float, ...]
    downbeats: tuple[float, ...]
    chords: tuple[tuple[int, ...], ...]  # pitch classes of each bar's chord
    bass_program: int
    chord_program: int
    notes: dict[str, tuple[NoteEvent, ...]] = field(default_factory=dict)  # 'drums', 'bass', 'other'
    vocals: tuple[VocalEvent, ...] = ()


def _chord_pitch_classes(key: Key, degree: int) -> tuple[int, ...]:
    """Pitch classes of the triad on scale `degree` (0..6); the dominant gets a 7th."""
    scale = _MAJOR_SCALE if key.mode == "major" else _HARMONIC_MINOR_SCALE
    size = 4 if degree == 4 else 3
    return tuple((key.tonic + scale[(degree + 2 * k) % 7]) % 12 for k in range(size))


def _place(pitch_class: int, *, low: int) -> int:
    """The MIDI note of `pitch_class` in the octave [low, low + 12)."""
    return low + (pitch_class - low) % 12


def plan_song(spec: SongSpec) -> SongPlan:
    """Plan the notes and words of `spec` (deterministic in `spec.seed`).

    One chord per bar following a 4-bar progression (repeated); drums mark the
    metre (kick on 1, snare on the back beats, crash at each phrase start);
    the vocal sings a chord tone on most beats and always on the downbeat,
    from the first downbeat at or after `spec.vocal_entry_s` (the words before
    it are planned and dropped, so the random stream, and with it the rest of
    the song, is the same as without a late entry).
    """
    rng = np.random.default_rng(spec.seed)
    beat_s = 60.0 / float(spec.tempo_bpm)
    bpb = spec.beats_per_bar
    start_s = round(float(rng.uniform(0.1, 0.6)), 3)
    n_beats = int(math.floor((spec.seconds - start_s) / beat_s - 1e-9)) + 1
    beats = tuple(round(start_s + i * beat_s, 6) for i in range(n_beats))
    downbeats = beats[::bpb]
    n_bars = int(math.ceil((spec.seconds + _TAIL_S - start_s) / (bpb * beat_s)))

    progressions = _MAJOR_PROGRESSIONS if spec.key.mode == "major" else _MINOR_PROGRESSIONS
    progression = progressions[int(rng.integers(len(progressions)))]
    bass_program = int(_BASS_PROGRAMS[int(rng.integers(len(_BASS_PROGRAMS)))])
    chord_program = int(_CHORD_PROGRAMS[int(rng.integers(len(_CHORD_PROGRAMS)))])
    chord_pattern = int(rng.integers(2))  # 0: every beat, 1: sustained from the downbeat
    eighth_hats = spec.tempo_bpm < 110.0

    chords = tuple(_chord_pitch_classes(spec.key, progression[b % len(progression)]) for b in range(n_bars))
    drums: list[NoteEvent] = []
    bass: list[NoteEvent] = []
    other: list[NoteEvent] = []
    vocals: list[VocalEvent] = []
    melody_pitch = _place(spec.key.tonic, low=_VOCAL_LOW_MIDI + 3)

    for bar in range(n_bars):
        bar_start = start_s + bar * bpb * beat_s
        chord = chords[bar]
        root = chord[0]
        phrase_start = bar % len(progression) == 0
        # drums
        for beat in range(bpb):
            t = bar_start + beat * beat_s
            if beat == 0:
                drums.append(NoteEvent(t, 0.2, _KICK, 110))
                if phrase_start:
                    drums.append(NoteEvent(t, 0.5, _CRASH, 100))
            elif bpb == 4 and beat == 2:
                drums.append(NoteEvent(t, 0.2, _KICK, 95))
            if (bpb == 4 and beat in (1, 3)) or (bpb == 3 and beat in (1, 2)):
                drums.append(NoteEvent(t, 0.2, _SNARE, 100 if bpb == 4 else 80))
            drums.append(NoteEvent(t, 0.1, _CLOSED_HAT, 90 if beat == 0 else 70))
            if eighth_hats:
                drums.append(NoteEvent(t + beat_s / 2, 0.1, _CLOSED_HAT, 50))
        # bass: root on 1, fifth on 3 (4/4) or on 3 of 3/4, quarter-note pulse in 4/4
        root_note = _place(root, low=36)
        fifth_note = root_note + 7
        if bpb == 4:
            for beat, note, vel in ((0, root_note, 105), (1, root_note, 80), (2, fifth_note, 95), (3, root_note, 80)):
                bass.append(NoteEvent(bar_start + beat * beat_s, 0.9 * beat_s, note, vel))
        else:
            bass.append(NoteEvent(bar_start, 1.9 * beat_s, root_note, 105))
            bass.append(NoteEvent(bar_start + 2 * beat_s, 0.9 * beat_s, fifth_note, 85))
        # chords ("other")
        voicing = sorted(_place(pc, low=55) for pc in chord)
        if chord_pattern == 0:
            for beat in range(bpb):
                for note in voicing:
                    other.append(NoteEvent(bar_start + beat * beat_s, 0.85 * beat_s, note, 90 if beat == 0 else 62))
        else:
            for note in voicing:
                other.append(NoteEvent(bar_start, (bpb - 0.15) * beat_s, note, 88))
            for beat in range(1, bpb):
                other.append(NoteEvent(bar_start + beat * beat_s, 0.4 * beat_s, voicing[-1] + 12, 55))
        # vocal: chord tones near the previous note
        candidates = sorted(
            p for p in range(_VOCAL_LOW_MIDI, _VOCAL_HIGH_MIDI + 1) if p % 12 in chord
        )
        for beat in range(bpb):
            t = bar_start + beat * beat_s
            if t >= spec.seconds - 0.2:
                break
            if beat != 0 and rng.uniform() < _VOCAL_REST_PROBABILITY:
                continue
            order = sorted(candidates, key=lambda p: (abs(p - melody_pitch), p))
            melody_pitch = int(order[min(int(rng.integers(3)), len(order) - 1)])
            word = _WORDS[int(rng.integers(len(_WORDS)))]
            vocals.append(VocalEvent(t, 0.92 * beat_s, word, melody_pitch, 1.0 if beat == 0 else 0.8))

    if spec.vocal_entry_s:
        entry_s = next((t for t in downbeats if t >= spec.vocal_entry_s - 1e-9), math.inf)
        vocals = [ev for ev in vocals if ev.onset_s >= entry_s - 1e-9]
        if not vocals:
            raise SongError(f"{spec.name}: no downbeat after vocal_entry_s={spec.vocal_entry_s:g} s to start the vocal")
    return SongPlan(
        spec=spec,
        start_s=start_s,
        beats=beats,
        downbeats=downbeats,
        chords=chords,
        bass_program=bass_program,
        chord_program=chord_program,
        notes={"drums": tuple(drums), "bass": tuple(bass), "other": tuple(other)},
        vocals=tuple(vocals),
    )


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SongError(tool_message(name) or f"the '{name}' command is not on PATH")
    return path


def _write_midi(path: Path, notes: Sequence[NoteEvent], *, program: int | None, channel: int) -> None:
    """One-track MIDI file at 60 BPM with 10000 ticks per beat (0.1 ms per tick).

    Times are given in seconds, so the file's tempo is only a time base.
    """
    ticks_per_s = 10000
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_s)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    if program is not None:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    events: list[tuple[int, int, mido.Message]] = []
    for note in notes:
        on = int(round(note.onset_s * ticks_per_s))
        off = int(round((note.onset_s + note.duration_s) * ticks_per_s))
        events.append((on, 1, mido.Message("note_on", note=note.pitch, velocity=note.velocity, channel=channel)))
        events.append((off, 0, mido.Message("note_off", note=note.pitch, velocity=0, channel=channel)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))  # offs before ons at the same tick
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid.save(str(path))


def _render_midi_stems(plan: SongPlan, n_samples: int, work: Path) -> dict[str, np.ndarray]:
    """Render drums, bass and other with fluidsynth (in parallel); each (2, n_samples) float64."""
    jobs = {
        "drums": (plan.notes["drums"], None, _DRUM_CHANNEL),
        "bass": (plan.notes["bass"], plan.bass_program, 0),
        "other": (plan.notes["other"], plan.chord_program, 0),
    }
    procs = {}
    exe = _require_tool("fluidsynth")
    if not SOUNDFONT.is_file():
        raise SongError(f"{soundfont_problem(SOUNDFONT)}; {soundfont_hint()}")
    for stem, (notes, program, channel) in jobs.items():
        midi_path = work / f"{stem}.mid"
        _write_midi(midi_path, notes, program=program, channel=channel)
        cmd = [
            exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(SR),
            "-O", "float", "-T", "wav", "-F", str(work / f"{stem}.wav"), str(SOUNDFONT), str(midi_path),
        ]
        procs[stem] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    errors = []
    for stem, proc in procs.items():
        _, err = proc.communicate()
        wav = work / f"{stem}.wav"
        if proc.returncode != 0 or not wav.is_file():
            errors.append(f"fluidsynth failed on {stem}: {err.strip()}")
            continue
        audio, sr = sf.read(str(wav), dtype="float64", always_2d=True)
        if sr != SR:
            errors.append(f"fluidsynth wrote {sr} Hz for {stem}, expected {SR}")
            continue
        audio = audio.T
        if audio.shape[1] < n_samples:
            audio = np.pad(audio, ((0, 0), (0, n_samples - audio.shape[1])))
        out[stem] = audio[:, :n_samples]
    if errors:
        raise SongError("; ".join(errors))
    return out


@functools.lru_cache(maxsize=None)
def _espeak_word(word: str, pitch_percent: int) -> tuple[np.ndarray, float]:
    """A monotone espeak-ng rendering of `word`, trimmed: (samples at 22050 Hz, median f0 in Hz)."""
    import librosa

    exe = _require_tool("espeak-ng")
    ssml = f'<speak><prosody pitch="{pitch_percent:+d}%" range="0%">{word}</prosody></speak>'
    proc = subprocess.run([exe, "-v", _ESPEAK_VOICE, "-m", "--stdout", ssml], capture_output=True)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise SongError(f"espeak-ng failed for {word!r}: {proc.stderr.decode(errors='replace').strip()}")

    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float64")
    if sr != _ESPEAK_SR:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=_ESPEAK_SR)
    audio, _ = librosa.effects.trim(audio, top_db=40)
    f0 = librosa.yin(audio, fmin=80, fmax=600, sr=_ESPEAK_SR, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0]
    n = min(len(f0), len(rms))
    voiced = f0[:n][rms[:n] > 0.2 * rms.max()]
    if voiced.size == 0:
        raise SongError(f"espeak-ng rendering of {word!r} has no voiced part")
    audio.setflags(write=False)
    return audio, float(np.median(voiced))


def _sung_word(word: str, pitch: int, *, max_duration_s: float) -> np.ndarray:
    """`word` sung at MIDI `pitch` with a light vibrato, at SR, at most `max_duration_s` long. Shape (n,).

    The monotone espeak-ng rendering nearest in pitch is read at a varying
    speed: on average `target / f0` (which sets the pitch), modulated by
    ±_VIBRATO_SEMITONES at _VIBRATO_HZ, as singers do; without the vibrato
    Spleeter leaves more of the steady voice in the accompaniment.
    """
    import librosa

    target_hz = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    options = [(_espeak_word(word, p), p) for p in _ESPEAK_PITCHES_PERCENT]
    (audio, f0_hz), _ = min(options, key=lambda o: abs(math.log(target_hz / o[0][1])))
    ratio = target_hz / f0_hz  # >1: play faster, higher
    source = librosa.resample(audio, orig_sr=_ESPEAK_SR, target_sr=SR, res_type="soxr_hq")
    n_max = min(int(max_duration_s * SR), int((len(source) - 1) / (ratio * 2 ** (_VIBRATO_SEMITONES / 12))))
    t = np.arange(n_max) / SR
    speed = ratio * 2.0 ** (_VIBRATO_SEMITONES / 12.0 * np.sin(2.0 * np.pi * _VIBRATO_HZ * t))
    position = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    out = np.interp(position, np.arange(len(source)), source)
    fade_in = min(len(out), int(0.005 * SR))
    fade_out = min(len(out), int(0.03 * SR))
    out[:fade_in] *= np.linspace(0.0, 1.0, fade_in)
    out[len(out) - fade_out:] *= np.linspace(1.0, 0.0, fade_out)
    return out


def _render_vocals(plan: SongPlan, n_samples: int) -> np.ndarray:
    """The vocal stem, (2, n_samples) float64 (mono duplicated)."""
    vocal = np.zeros(n_samples)
    for ev in plan.vocals:
        seg = _sung_word(ev.word, ev.pitch, max_duration_s=ev.max_duration_s) * ev.gain
        i = int(round(ev.onset_s * SR))
        j = min(n_samples, i + len(seg))
        if j > i:
            vocal[i:j] += seg[: j - i]
    return np.stack([vocal, vocal])


def _balance_and_quantise(stems: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scale stems to their target RMS, apply one common gain so nothing exceeds
    `_PEAK`, fade out, quantise to int16. Returns the int16 stems (n, 2) and their
    exact sum (the mix, int16)."""
    scaled = {}
    for name in STEM_NAMES:
        audio = stems[name]
        rms = float(np.sqrt(np.mean(audio**2)))
        if rms <= 1e-9:
            raise SongError(f"rendered {name} stem is silent")
        scaled[name] = audio * (_STEM_RMS[name] / rms)
    mix = cast(np.ndarray, sum(scaled[n] for n in STEM_NAMES))
    peak = max(float(np.max(np.abs(mix))), *(float(np.max(np.abs(a))) for a in scaled.values()))
    gain = _PEAK / peak
    n = mix.shape[1]
    fade = np.ones(n)
    k = int(_FADE_OUT_S * SR)
    fade[n - k:] = np.linspace(1.0, 0.0, k)
    ints = {}
    for name in STEM_NAMES:
        ints[name] = np.round(scaled[name] * gain * fade * 32767.0).astype(np.int32).T
    total = cast(np.ndarray, sum(ints[n_] for n_ in STEM_NAMES))
    if np.max(np.abs(total)) > 32767:
        raise SongError("mix would clip after quantisation")  # cannot happen with _PEAK < 1
    return {k_: v.astype(np.int16) for k_, v in ints.items()}, total.astype(np.int16)


def _truth_matches(out_dir: Path, spec: SongSpec) -> SongTruth | None:
    if not (out_dir / "truth.json").is_file():
        return None
    try:
        truth = load_truth(out_dir)
    except SongError:
        return None
    if truth.spec != spec or truth.generator_version != GENERATOR_VERSION:
        return None
    if not all(p.is_file() for p in (*truth.stem_paths.values(), truth.mix_path)):
        return None
    return truth


def render_song(spec: SongSpec, out_dir: Path) -> SongTruth:
    """Render `spec` into `out_dir` (created): four stems, mix.wav, truth.json.

    Idempotent: when `out_dir/truth.json` already describes this spec (same
    generator version, all files present) nothing is rendered. Files are
    written to a temporary folder first and moved in, truth.json last, so an
    interrupted render is never mistaken for a finished one.
    """
    out_dir = Path(out_dir)
    existing = _truth_matches(out_dir, spec)
    if existing is not None:
        return existing
    plan = plan_song(spec)
    n_samples = int(round(spec.seconds * SR))
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=out_dir) as tmp:
        work = Path(tmp)
        raw = _render_midi_stems(plan, n_samples, work)
        raw["vocals"] = _render_vocals(plan, n_samples)
        ints, mix = _balance_and_quantise(raw)
        for name, data in (*ints.items(), ("mix", mix)):
            sf.write(str(work / f"{name}.final.wav"), data, SR, subtype="PCM_16", format="WAV")
        (out_dir / "truth.json").unlink(missing_ok=True)
        for name in (*STEM_NAMES, "mix"):
            os.replace(work / f"{name}.final.wav", out_dir / f"{name}.wav")
    truth = SongTruth(spec=spec, start_s=plan.start_s, beats=plan.beats, downbeats=plan.downbeats, out_dir=out_dir)
    tmp_truth = out_dir / ".truth.json.tmp"
    tmp_truth.write_text(json.dumps(truth.to_dict(), indent=1, sort_keys=True) + "\n")
    os.replace(tmp_truth, out_dir / "truth.json")
    return truth


def render_songs(specs: Iterable[SongSpec], root: Path, *, progress: bool = True) -> list[SongTruth]:
    """Render every spec into ``root/<spec.name>`` (reusing finished ones), with a tqdm bar."""
    from tqdm import tqdm

    specs = list(specs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SongError("song names must be unique within one render_songs call")
    root = Path(root)
    return [render_song(s, root / s.name) for s in tqdm(specs, desc="songs", unit="song", disable=not progress)]


def link_stems_folders(songs: Iterable[SongTruth], folder: Path) -> Path:
    """Lay rendered songs out as ``folder/<song>/{vocals,drums,bass,other}.wav`` symlinks, the layout
    ``ingest --separator stems`` reads; returns ``folder``."""
    folder = Path(folder)
    for song in songs:
        d = folder / song.out_dir.name
        d.mkdir(parents=True, exist_ok=True)
        for raw, path in song.stem_paths.items():
            (d / f"{raw}.wav").symlink_to(path)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m generation.synth_songs OUT_DIR --count N --seed S [--seconds 20]``."""
    parser = argparse.ArgumentParser(prog="python -m generation.synth_songs", description="Render generated multitrack demo songs with ground truth.")
    parser.add_argument("out_dir", type=Path, help="folder that receives one subfolder per song")
    parser.add_argument("--count", type=int, default=24, help="number of songs (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole set (default 0)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each song in seconds (default 20)")
    parser.add_argument("--min-bpm", type=float, default=70.0, help="lowest tempo (default 70)")
    parser.add_argument("--max-bpm", type=float, default=160.0, help="highest tempo (default 160)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        specs = demo_song_specs(count=args.count, seed=args.seed, seconds=args.seconds, tempo_range_bpm=(args.min_bpm, args.max_bpm))
        truths = render_songs(specs, args.out_dir, progress=not args.quiet)
    except SongError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for t in truths:
        print(f"{t.out_dir}\t{t.key.label}\t{t.tempo_bpm:.1f} BPM\t{t.beats_per_bar}/4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
