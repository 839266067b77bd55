"""Real pieces with a known tempo: excerpts of Debian's openttd-openmsx MIDI files rendered with fluidsynth.

Why: generated songs (:mod:`generation.synth_songs`) are a fixture written here, so a
tempo rule tuned on them alone may only have learnt their style. The openMSX
set (31 General MIDI pieces by several composers, GPL-2, ``apt-get install
openttd-openmsx``) is music nobody on the project wrote, and a MIDI file
carries its own tempo, so the truth is exact: the tempo of an excerpt is the
file's ``set_tempo`` in quarter notes per minute (BPM), 120 BPM where the file
sets none (the MIDI default).

An excerpt is usable only where the tempo is constant over it (every tempo in
force during the excerpt within :data:`CONSTANT_TEMPO_TOLERANCE` of the first);
:func:`openmsx_excerpts` returns the others apart with the reason.

Only this package is used for tempo truth, so that other MIDI collections stay
an independent test. Rendering needs ``fluidsynth`` and ``fluid-soundfont-gm``
(apt) and ``mido`` (pip); no Django here.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from generation.errors import SongError
from generation.synth_songs import SOUNDFONT, SR, _require_tool

__all__ = [
    "OPENMSX_DIR",
    "CONSTANT_TEMPO_TOLERANCE",
    "MidiExcerpt",
    "tempo_map",
    "midi_excerpt",
    "openmsx_excerpts",
    "render_excerpt",
    "note_onsets",
]

#: Where the Debian package ``openttd-openmsx`` installs its MIDI files.
OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
#: Relative spread of the tempi in force over an excerpt above which it is skipped.
CONSTANT_TEMPO_TOLERANCE = 0.001
_DEFAULT_TEMPO_BPM = 120.0  # MIDI's tempo where a file sets none
_RELEASE_S = 0.5  # notes still sounding at the end of an excerpt are released this long after it
_GAIN = 0.5  # fluidsynth master gain; FluidR3 at 0.5 stays below full scale on these pieces


@dataclass(frozen=True)
class MidiExcerpt:
    """`seconds` of a MIDI file from `start_s` (s), whose tempo is `tempo_bpm` throughout.

    `tempo_bpm` is quarter notes per minute; `time_signature` is the first one
    in force over the excerpt ("4/4"; None where the file has none).
    """

    name: str
    midi_path: Path
    start_s: float
    seconds: float
    tempo_bpm: float
    time_signature: str | None


def _timed_messages(mid: mido.MidiFile) -> list[tuple[float, mido.Message]]:
    """Every message of `mid` (tracks merged) with its absolute time in seconds."""
    out = []
    tempo = mido.bpm2tempo(_DEFAULT_TEMPO_BPM)  # µs per quarter note
    now_s = 0.0
    for msg in mido.merge_tracks(mid.tracks):
        now_s += mido.tick2second(msg.time, mid.ticks_per_beat, tempo)
        out.append((now_s, msg))
        if msg.type == "set_tempo":
            tempo = msg.tempo
    return out


def tempo_map(path: Path | str) -> list[tuple[float, float]]:
    """(time s, tempo BPM) of every tempo change of a MIDI file, starting with the one in force at 0 s."""
    mid = _load(path)
    changes = [(0.0, _DEFAULT_TEMPO_BPM)]
    for t, msg in _timed_messages(mid):
        if msg.type == "set_tempo":
            bpm = float(mido.tempo2bpm(msg.tempo))
            if t <= changes[-1][0]:
                changes[-1] = (changes[-1][0], bpm)
            else:
                changes.append((t, bpm))
    return changes


def _load(path: Path | str) -> mido.MidiFile:
    try:
        return mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError) as exc:
        raise SongError(f"{path}: cannot read MIDI: {exc}") from exc


def midi_excerpt(path: Path | str, *, start_s: float = 0.0, seconds: float = 30.0) -> MidiExcerpt:
    """The excerpt [start_s, start_s + seconds) of a MIDI file, if its tempo is constant there.

    Raises SongError saying why when it is not (tempo change inside, or the
    file is shorter than the excerpt).
    """
    path = Path(path)
    mid = _load(path)
    end_s = start_s + seconds
    if mid.length < end_s:
        raise SongError(f"{path.name}: {mid.length:.1f} s long, shorter than the excerpt's end at {end_s:g} s")
    changes = tempo_map(path)
    in_force = [bpm for i, (t, bpm) in enumerate(changes)
                if t < end_s and (i + 1 == len(changes) or changes[i + 1][0] > start_s)]
    spread = max(in_force) / min(in_force) - 1.0
    if spread > CONSTANT_TEMPO_TOLERANCE:
        inside = [f"{bpm:.1f} BPM at {t:.1f} s" for t, bpm in changes if t < end_s]
        shown = ", ".join(inside[:3]) + (f" and {len(inside) - 3} more changes" if len(inside) > 3 else "")
        raise SongError(f"{path.name}: tempo not constant within {start_s:g}-{end_s:g} s ({shown})")
    signature = None
    for t, msg in _timed_messages(mid):
        if msg.type == "time_signature" and (t <= start_s or signature is None) and t < end_s:
            signature = f"{msg.numerator}/{msg.denominator}"
    return MidiExcerpt(name=path.stem, midi_path=path, start_s=float(start_s), seconds=float(seconds),
                       tempo_bpm=round(in_force[0], 4), time_signature=signature)


def note_onsets(ex: MidiExcerpt) -> np.ndarray:
    """Distinct note-on times within the excerpt, in quarter notes from the file's start (sorted)."""
    mid = _load(ex.midi_path)
    ticks, onsets = 0, set()
    for t, msg in _timed_messages(mid):
        ticks += msg.time
        if msg.type == "note_on" and msg.velocity > 0 and ex.start_s <= t < ex.start_s + ex.seconds:
            onsets.add(ticks)
    return np.array(sorted(onsets), dtype=float) / mid.ticks_per_beat


def openmsx_excerpts(*, seconds: float = 30.0, start_s: float = 0.0,
                     directory: Path = OPENMSX_DIR) -> tuple[list[MidiExcerpt], list[tuple[str, str]]]:
    """Usable excerpts of every openMSX piece, and (name, reason) for each piece skipped.

    Raises SongError when the package is not installed.
    """
    files = sorted(Path(directory).glob("*.mid"))
    if not files:
        raise SongError(f"no MIDI files in {directory}: apt-get install openttd-openmsx")
    kept, skipped = [], []
    for path in files:
        try:
            kept.append(midi_excerpt(path, start_s=start_s, seconds=seconds))
        except SongError as exc:
            skipped.append((path.stem, str(exc)))
    return kept, skipped


def _truncated_midi(ex: MidiExcerpt, out: Path) -> None:
    """Write the piece up to the excerpt's end (plus a release) as a type-0 file, every note then stopped."""
    mid = _load(ex.midi_path)
    cut_s = ex.start_s + ex.seconds
    track = mido.MidiTrack()
    pending_ticks = 0
    for t, msg in _timed_messages(mid):
        if t >= cut_s:
            break
        pending_ticks += msg.time
        if msg.type != "end_of_track":
            track.append(msg.copy(time=pending_ticks))
            pending_ticks = 0
    release_ticks = int(mido.second2tick(_RELEASE_S, mid.ticks_per_beat, mido.bpm2tempo(ex.tempo_bpm)))
    for channel in range(16):
        track.append(mido.Message("control_change", channel=channel, control=123, value=0,
                                  time=release_ticks if channel == 0 else 0))
    track.append(mido.MetaMessage("end_of_track", time=0))
    short = mido.MidiFile(type=0, ticks_per_beat=mid.ticks_per_beat)
    short.tracks.append(track)
    short.save(str(out))


def render_excerpt(ex: MidiExcerpt, wav_path: Path | str) -> Path:
    """Render `ex` with fluidsynth (FluidR3 GM, its reverb and chorus) to a 44.1 kHz 16-bit stereo WAV.

    Only the part up to the excerpt's end is synthesised (a 30 s excerpt of a
    2 min piece takes about 3 s). Returns `wav_path`.
    """
    exe = _require_tool("fluidsynth")
    if not SOUNDFONT.is_file():
        raise SongError(f"soundfont {SOUNDFONT} not found: apt-get install fluid-soundfont-gm or set MASHLAB_SOUNDFONT")
    wav_path = Path(wav_path)
    with tempfile.TemporaryDirectory(prefix="midi-excerpt-") as tmp:
        midi = Path(tmp) / "excerpt.mid"
        raw = Path(tmp) / "raw.wav"
        _truncated_midi(ex, midi)
        cmd = [exe, "-ni", "-q", "-r", str(SR), "-g", str(_GAIN), "-O", "s16", "-T", "wav",
               "-F", str(raw), str(SOUNDFONT), str(midi)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not raw.is_file():
            raise SongError(f"fluidsynth failed on {ex.midi_path.name} (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        audio, sr = sf.read(str(raw), dtype="int16", always_2d=True)
    first = int(round(ex.start_s * sr))
    n = int(round(ex.seconds * sr))
    clip = audio[first:first + n]
    if len(clip) < n:
        clip = np.concatenate([clip, np.zeros((n - len(clip), clip.shape[1]), dtype=clip.dtype)])
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(wav_path), clip, sr, subtype="PCM_16")
    return wav_path
