"""The ingest pipeline, free of Django: find sources, plan clips, cut, separate, analyse.

Each clip is prepared in a private staging folder, so a failure leaves nothing
behind; the Django side (`generation/services.py`) moves a finished folder into
MEDIA_ROOT and writes its rows in one step. Every stage is a function of one
item plus stored inputs, so the work can later be spread over a distributed
engine without rewriting it.
"""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from generation.annotations import AnnotationError, BeatWindow, find_annotation
from generation.audio import AudioError, audio_info, is_audio_file, load_audio, write_wav

SEPARATORS = ("spleeter:4stems", "spleeter:2stems", "stems")
SAMPLE_RATE = 44100
MIN_CLIP_S = 5.0


class IngestError(ValueError):
    """A problem with one input; the message is one line naming the file."""


@dataclass(frozen=True)
class ClipPlan:
    """What to cut from one source: `source` is an audio file, or a song folder of stems."""

    source: Path
    name: str
    start_s: float
    duration_s: float
    source_sha256: str
    segment_label: str = ""
    beat_window: BeatWindow | None = None

    @property
    def uid(self) -> str:
        """Stable folder name: content hash plus start in milliseconds."""
        return f"{self.source_sha256[:16]}-{int(round(self.start_s * 1000))}"


@dataclass
class PreparedClip:
    """A clip whose audio, stems and analysis sit complete in `folder` (paths relative to it)."""

    plan: ClipPlan
    folder: Path
    audio_name: str
    sample_rate: int
    duration_s: float
    key_label: str = ""
    tempo_bpm: float = 0.0
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    beats_per_bar: int = 4
    analysis_source: str = "estimated"
    stems: list[tuple[str, str, str, str]] = field(default_factory=list)  # (name, kind, file name, method)


@dataclass(frozen=True)
class Failure:
    source: Path
    message: str

    def __str__(self) -> str:
        return self.message


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def discover_sources(paths: Iterable[Path], *, separator: str) -> tuple[list[Path], list[Failure]]:
    """Expand files and folders into sources: audio files, or (separator 'stems') song folders."""
    sources: list[Path] = []
    failures: list[Failure] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            failures.append(Failure(path, f"{path}: no such file or folder"))
        elif separator == "stems":
            found = _stem_folders(path)
            if not found:
                failures.append(Failure(path, f"{path}: no folder of stems (vocals/drums/bass/other) found"))
            sources.extend(found)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_file(p))
            if not found:
                failures.append(Failure(path, f"{path}: folder holds no audio files"))
            sources.extend(found)
        else:
            sources.append(path)
    return sources, failures


def _stem_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    from generation.separation import stem_kind

    if any(stem_kind(p) == "vocals" for p in path.iterdir() if p.is_file()):
        return [path]
    return sorted(d for child in sorted(path.iterdir()) for d in _stem_folders(child))


def source_hash(source: Path) -> str:
    """Content hash of a source file, or of the audio files of a stems folder."""
    if source.is_dir():
        h = hashlib.sha256()
        for p in sorted(source.iterdir()):
            if p.is_file() and is_audio_file(p):
                h.update(p.name.encode() + b"\0" + sha256_file(p).encode())
        return h.hexdigest()
    return sha256_file(source)


def _reference_audio(source: Path) -> Path:
    """The file whose length bounds the clip: the source itself, or a stem of the folder."""
    if not source.is_dir():
        return source
    files = sorted(p for p in source.iterdir() if p.is_file() and is_audio_file(p))
    if not files:
        raise IngestError(f"{source}: folder holds no audio files")
    return files[0]


GENERIC_NAMES = {"mix", "mixture", "master", "full", "song"}


def clip_name(source: Path) -> str:
    """A readable name: the file name, or the song folder's for generic names like mixture.wav."""
    if source.is_dir() or source.stem.lower() in GENERIC_NAMES:
        return source.parent.name if source.is_file() else source.name
    return source.stem


def plan_clips(source: Path, *, clip_seconds: float, annotations_dir: Path | None = None) -> list[ClipPlan]:
    """The clips to cut from one source: a preview from the start, or the annotated verses and choruses."""
    if clip_seconds < MIN_CLIP_S:
        raise IngestError(f"--clip-seconds must be at least {MIN_CLIP_S:g} s")
    try:
        info = audio_info(_reference_audio(source))
    except AudioError as exc:
        raise IngestError(str(exc)) from None
    digest = source_hash(source)
    name = clip_name(source)
    if annotations_dir is None:
        duration = min(clip_seconds, info.seconds)
        if duration < MIN_CLIP_S:
            raise IngestError(f"{source}: {info.seconds:.2f} s long; clips must last at least {MIN_CLIP_S:g} s")
        return [ClipPlan(source, name, 0.0, round(duration, 6), digest)]
    try:
        annotation = find_annotation(annotations_dir, name)
    except AnnotationError as exc:
        raise IngestError(str(exc)) from None
    plans = []
    for n, seg in enumerate(annotation.clip_segments(), start=1):
        end = min(seg.end_s, info.seconds, seg.start_s + clip_seconds)
        if end - seg.start_s < MIN_CLIP_S:
            continue
        try:
            window = annotation.window(seg.start_s, end)
        except AnnotationError:
            continue
        plans.append(
            ClipPlan(source, f"{name}-{seg.label}{n}", round(seg.start_s, 6), round(end - seg.start_s, 6),
                     digest, seg.label, window)
        )
    if not plans:
        raise IngestError(f"{source}: no verse or chorus segment of at least {MIN_CLIP_S:g} s with beats")
    return plans


def cut_clip(plan: ClipPlan, folder: Path) -> PreparedClip:
    """Load and validate the clip's audio and write it (float WAV, 44.1 kHz stereo) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if plan.source.is_dir():
        from generation.separation import import_stems

        stems = import_stems(plan.source)
        # a song may lack a part (no bass, say): a silent stem is kept, the mix must not be silent
        loaded = {name: _load(path, plan, allow_silent=True) for name, path in stems.raw.items()}
        if not np.any(np.abs(np.sum(list(loaded.values()), axis=0)) > 1e-3):
            raise IngestError(f"{plan.source}: all stems are silent")
        length = min(a.shape[1] for a in loaded.values())
        parts = {name: a[:, :length] for name, a in loaded.items()}
        prepared = _write_clip(plan, folder, np.sum(list(parts.values()), axis=0).astype(np.float32))
        for name, audio in parts.items():
            write_wav(folder / f"{name}.wav", audio, sr=SAMPLE_RATE)
            prepared.stems.append((name, "raw", f"{name}.wav", "stems"))
        _write_roles(prepared, parts, "stems")
        return prepared
    return _write_clip(plan, folder, _load(plan.source, plan))


def _load(path: Path, plan: ClipPlan, *, allow_silent: bool = False) -> np.ndarray:
    return load_audio(path, sr=SAMPLE_RATE, min_seconds=MIN_CLIP_S, start_s=plan.start_s, duration_s=plan.duration_s,
                      allow_silent=allow_silent)


def _write_clip(plan: ClipPlan, folder: Path, audio: np.ndarray) -> PreparedClip:
    write_wav(folder / "clip.wav", audio, sr=SAMPLE_RATE)
    return PreparedClip(plan, folder, "clip.wav", SAMPLE_RATE, round(audio.shape[1] / SAMPLE_RATE, 6))


ROLE_SOURCES = {"vocal": ("vocals",), "harmonic": ("bass", "other"), "percussion": ("drums",)}


def _write_roles(prepared: PreparedClip, parts: dict[str, np.ndarray], method: str) -> None:
    """Record the three role stems: vocal = vocals, harmonic = bass + other, percussion = drums.

    A role made of one raw stem points at that stem's file (as the Spleeter path
    does); only a sum of several gets a file of its own, `role-<role>.wav`. A 30 s
    float stem is 10.6 MB, so a copy per single-stem role would cost a third more
    disk per clip for identical bytes.
    """
    for role, names in ROLE_SOURCES.items():
        present = [n for n in names if n in parts]
        if not present:
            raise IngestError(f"{prepared.plan.source}: no {' or '.join(names)} stem for the {role} role")
        if len(present) == 1:
            file = f"{present[0]}.wav"
        else:
            file = f"role-{role}.wav"
            write_wav(prepared.folder / file, np.sum([parts[n] for n in present], axis=0), sr=SAMPLE_RATE)
        prepared.stems.append((role, "role", file, method))


def separate_clips(clips: list[PreparedClip], *, separator: str, progress: bool = True) -> dict[str, Failure]:
    """Run the separator once over the batch and record stems; returns failures by clip uid."""
    from generation.separation import SeparationError, separate

    todo = [c for c in clips if not c.stems]
    if not todo:
        return {}
    try:
        results = separate(
            [c.folder / c.audio_name for c in todo], [c.folder / "sep" for c in todo], model=separator,
            progress=progress,
        )
    except SeparationError as exc:
        return {c.plan.uid: Failure(c.plan.source, f"{c.plan.source}: {exc}") for c in todo}
    for clip, result in zip(todo, results):
        for name, path in result.raw.items():
            rel = path.relative_to(clip.folder).as_posix()
            clip.stems.append((name, "raw", rel, separator))
        for role, path in result.roles.items():
            rel = path.relative_to(clip.folder).as_posix()
            clip.stems.append((role, "role", rel, result.methods[role]))
    return {}


def _analyse_path(path: str) -> dict:
    from generation.analysis import analyse

    audio = load_audio(Path(path), sr=SAMPLE_RATE, min_seconds=MIN_CLIP_S)
    result = analyse(audio, sr=SAMPLE_RATE)
    return {
        "key_label": result.key.label,
        "tempo_bpm": float(result.tempo_bpm),
        "beats": [round(float(t), 4) for t in result.beats],
        "downbeats": [round(float(t), 4) for t in result.downbeats],
        "beats_per_bar": int(result.beats_per_bar),
    }


def analyse_clips(clips: list[PreparedClip], *, jobs: int = 1, progress: bool = True) -> dict[str, Failure]:
    """Key, tempo, beats and downbeats for each clip (madmom), in `jobs` processes; failures by uid.

    Annotated clips take tempo, beats and downbeats from the annotation; their key
    still comes from the audio (Harmonix has no key annotation).
    """
    failures: dict[str, Failure] = {}
    todo = list(clips)
    for clip in todo:
        if clip.plan.beat_window is not None:
            w = clip.plan.beat_window
            clip.tempo_bpm, clip.beats, clip.downbeats = w.tempo_bpm, w.beats, w.downbeats
            clip.beats_per_bar, clip.analysis_source = w.beats_per_bar, "annotated"
    bar = tqdm(total=len(todo), desc="analyse", unit="clip", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 and len(todo) > 1 else None
    try:
        futures = [pool.submit(_analyse_path, str(c.folder / c.audio_name)) for c in todo] if pool else None
        for n, clip in enumerate(todo):
            try:
                found = futures[n].result() if futures else _analyse_path(str(clip.folder / clip.audio_name))
            except Exception as exc:  # one clip's failure must not sink the batch
                failures[clip.plan.uid] = Failure(clip.plan.source, f"{clip.plan.source}: analysis failed: {exc}")
            else:
                clip.key_label = found["key_label"]
                if clip.analysis_source != "annotated":
                    clip.tempo_bpm, clip.beats = found["tempo_bpm"], found["beats"]
                    clip.downbeats, clip.beats_per_bar = found["downbeats"], found["beats_per_bar"]
            bar.update(1)
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    return failures


def prepare_clips(
    plans: list[ClipPlan],
    staging: Path,
    *,
    separator: str,
    jobs: int = 1,
    progress: bool = True,
    report: Callable[[Failure], None] = lambda f: None,
) -> list[PreparedClip]:
    """Cut, separate and analyse; failed clips are reported and their staging folders removed."""
    if separator not in SEPARATORS:
        raise IngestError(f"unknown separator {separator!r}; choose one of {', '.join(SEPARATORS)}")
    prepared: list[PreparedClip] = []
    for plan in tqdm(plans, desc="cut", unit="clip", disable=not progress):
        folder = staging / plan.uid
        try:
            prepared.append(cut_clip(plan, folder))
        except (AudioError, IngestError, ValueError) as exc:
            report(Failure(plan.source, str(exc)))
            shutil.rmtree(folder, ignore_errors=True)
    failed = separate_clips(prepared, separator=separator, progress=progress) if separator != "stems" else {}
    failed.update(analyse_clips([c for c in prepared if c.plan.uid not in failed], jobs=jobs, progress=progress))
    good = []
    for clip in prepared:
        if clip.plan.uid in failed:
            report(failed[clip.plan.uid])
            shutil.rmtree(clip.folder, ignore_errors=True)
        else:
            good.append(clip)
    return good
