"""The ingest pipeline, free of Django: find sources, plan clips, cut, separate, analyse.

Each clip is prepared in a private staging folder, so a failure leaves nothing
behind; the Django side (`generation/services.py`) moves a finished folder into
MEDIA_ROOT and writes its rows in one step. Every stage is a function of one
item plus stored inputs, so the work can later be spread over a distributed
engine without rewriting it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

import numpy as np
from tqdm import tqdm

from config.cluster import dask_client, each_result, worker_count
from generation.annotations import BeatWindow, find_annotation
from generation.audio import SR, audio_info, is_audio_file, load_audio, store_audio, write_wav
from generation.errors import AnnotationError, AudioError, IngestError, SegmentError
from generation.segments import SEGMENT_VERSION, Window, choose_windows, start_windows

if TYPE_CHECKING:
    from generation.separation import SeparatedStems

SEPARATORS = ("spleeter:4stems", "spleeter:2stems", "stems")
SEGMENTS = ("start", "auto")  # what `ingest --segment` takes; annotated clips are the third method
MIN_CLIP_S = 5.0
MAX_SOURCE_S = 600.0  # `--segment auto` separates the whole recording; longer files are refused (s)
#: Peak a clip is scaled down to when its decoded source exceeds full scale (Vorbis and MP3 decodes of
#: masters at 0 dBFS overshoot: 22 of the 41 Wesnoth tracks, up to 1.49), so that integer FLAC holds it.
HEADROOM_PEAK = 0.999


def fit_full_scale(*arrays: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Scale `arrays` by one common gain so that none peaks above HEADROOM_PEAK; (scaled arrays, gain in dB <= 0).

    Only audio beyond full scale is touched (gain 0 dB otherwise): the level
    of a clip is its source's wherever integer storage can hold it.
    """
    peak = max(float(np.max(np.abs(a))) for a in arrays)
    if peak <= 1.0:
        return list(arrays), 0.0
    gain = HEADROOM_PEAK / peak
    return [(a * gain).astype(np.float32) for a in arrays], round(20 * np.log10(gain), 4)



@dataclass(frozen=True)
class WholeSeparation:
    """A whole recording resampled to 44.1 kHz (`audio`) and its separated stems, in the staging folder.

    `--segment auto` separates a recording once, chooses its windows, and cuts
    every clip's audio and stems from these files (no second separation).
    """

    audio: Path
    stems: SeparatedStems  # generation.separation is imported lazily at run time
    gain_db: float = 0.0  # applied to the whole recording before separation (fit_full_scale)


@dataclass(frozen=True)
class ClipPlan:
    """What to cut from one source: `source` is an audio file, or a song folder of stems.

    `segment_method` says how `start_s` was chosen ('start', 'auto' or
    'annotated', see generation.segments) and `segment_score` is the auto
    choice's score (None otherwise). `whole` is set for auto clips of audio
    files: the clip and its stems are cut from that separation.
    """

    source: Path
    name: str
    start_s: float
    duration_s: float
    source_sha256: str
    segment_label: str = ""
    beat_window: BeatWindow | None = None
    segment_method: str = "start"
    segment_score: float | None = None
    whole: WholeSeparation | None = field(default=None, compare=False, hash=False)

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
    gain_db: float = 0.0  # level change from the source (fit_full_scale), dB


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


def _check_counts(clip_seconds: float, clips_per_file: int) -> None:
    if clip_seconds < MIN_CLIP_S:
        raise IngestError(f"--clip-seconds must be at least {MIN_CLIP_S:g} s")
    if int(clips_per_file) != clips_per_file or clips_per_file < 1:
        raise IngestError(f"--clips-per-file must be a positive integer, got {clips_per_file!r}")


def _source_facts(source: Path, clip_seconds: float) -> tuple[float, str, str]:
    """(seconds, content hash, clip name) of a source; IngestError when it cannot give one clip."""
    try:
        info = audio_info(_reference_audio(source))
    except AudioError as exc:
        raise IngestError(str(exc)) from None
    if min(clip_seconds, info.seconds) < MIN_CLIP_S:
        raise IngestError(f"{source}: {info.seconds:.2f} s long; clips must last at least {MIN_CLIP_S:g} s")
    return info.seconds, source_hash(source), clip_name(source)


def _numbered(name: str, k: int, count: int) -> str:
    """A clip's name: the source's, with -2, -3, ... for the later clips of one file."""
    return name if k == 0 else f"{name}-{k + 1}"


def plan_clips(
    source: Path, *, clip_seconds: float, annotations_dir: Path | None = None, clips_per_file: int = 1
) -> list[ClipPlan]:
    """The clips to cut from one source: previews from the start, or the annotated verses and choruses.

    Without annotations: `clips_per_file` consecutive windows of
    `clip_seconds` from 0 s (the first may be shorter on a short file). For
    `--segment auto` see `plan_auto_clips`.
    """
    _check_counts(clip_seconds, clips_per_file)
    if annotations_dir is None:
        seconds, digest, name = _source_facts(source, clip_seconds)
        windows = start_windows(seconds, clip_seconds=clip_seconds, count=clips_per_file)
        return [ClipPlan(source, _numbered(name, k, len(windows)), w.start_s, w.duration_s, digest)
                for k, w in enumerate(windows)]
    try:
        info = audio_info(_reference_audio(source))
    except AudioError as exc:
        raise IngestError(str(exc)) from None
    digest = source_hash(source)
    name = clip_name(source)
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
                     digest, seg.label, window, segment_method="annotated")
        )
    if not plans:
        raise IngestError(f"{source}: no verse or chorus segment of at least {MIN_CLIP_S:g} s with beats")
    return plans


# --- --segment auto ---------------------------------------------------------------------------

def _choice_file(cache_dir: Path, digest: str, *, separator: str, clip_seconds: float) -> Path:
    tag = separator.replace(":", "-")
    return Path(cache_dir) / f"{digest[:32]}-{tag}-{clip_seconds:g}s-v{SEGMENT_VERSION}.json"


def _read_choice(cache_dir: Path | None, digest: str, **key) -> list[Window] | None:
    """The windows chosen before for this recording and these settings, or None (absent or unreadable)."""
    if cache_dir is None:
        return None
    path = _choice_file(cache_dir, digest, **key)
    try:
        data = json.loads(path.read_text())
        return [Window.from_dict(w) for w in data["windows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_choice(cache_dir: Path | None, digest: str, windows: list[Window], **key) -> None:
    if cache_dir is None:
        return
    path = _choice_file(cache_dir, digest, **key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"version": SEGMENT_VERSION, **key, "windows": [w.to_dict() for w in windows]}))
    os.replace(tmp, path)


def _auto_plans(source: Path, name: str, digest: str, windows: list[Window], count: int,
                whole: WholeSeparation | None) -> list[ClipPlan]:
    return [ClipPlan(source, _numbered(name, k, count), w.start_s, w.duration_s, digest,
                     segment_method="auto", segment_score=round(w.score, 6), whole=whole)
            for k, w in enumerate(windows[:count])]


def _all_windows(vocal: np.ndarray, rest: np.ndarray, *, clip_seconds: float) -> list[Window]:
    """Every non-overlapping window the greedy choice yields, best first (the first N are any N's choice)."""
    most = int(vocal.shape[-1] / SR // clip_seconds) + 1
    return choose_windows(vocal, rest, sr=SR, clip_seconds=clip_seconds, count=most)


def plan_auto_clips(
    sources: list[Path],
    staging: Path,
    *,
    separator: str,
    clip_seconds: float,
    clips_per_file: int = 1,
    cache_dir: Path | None = None,
    is_known: Callable[[ClipPlan], bool] = lambda plan: False,
    progress: bool = True,
    report: Callable[[Failure], None] = lambda f: None,
) -> tuple[list[ClipPlan], int]:
    """`--segment auto`: the `clips_per_file` best windows of each source (generation.segments); (plans, skipped).

    Audio files are separated whole, once, in one Spleeter batch (into
    `staging`); the windows are scored on the separated vocal and the rest,
    and each clip's audio and stems are later cut from that separation by
    `cut_clip`. Folders of stems (`separator` 'stems') are scored on their
    own vocal stem. The choice is kept in `cache_dir` per recording and
    settings, so a rerun whose clips are all stored (`is_known`) skips the
    recording without separating it again; `skipped` counts those clips.
    Failures are reported per source and the other sources go on.
    """
    from generation.errors import SeparationError
    from generation.separation import import_stems, separate

    _check_counts(clip_seconds, clips_per_file)
    key = {"separator": separator, "clip_seconds": float(clip_seconds)}
    plans: list[ClipPlan] = []
    skipped = 0
    pending: list[tuple[Path, str, str]] = []
    for source in sources:
        try:
            _, digest, name = _source_facts(source, clip_seconds)
        except IngestError as exc:
            report(Failure(source, str(exc)))
            continue
        cached = _read_choice(cache_dir, digest, **key)
        if cached is not None:
            mine = _auto_plans(source, name, digest, cached, clips_per_file, None)
            if all(is_known(p) for p in mine):
                skipped += len(mine)
                continue
        pending.append((source, digest, name))

    chosen: list[tuple[Path, str, str, list[Window], WholeSeparation | None]] = []
    if separator == "stems":
        for source, digest, name in pending:
            try:
                stems = import_stems(source)
                parts = {n: load_audio(p, sr=SR, min_seconds=MIN_CLIP_S, max_seconds=MAX_SOURCE_S,
                                       allow_silent=True) for n, p in stems.raw.items()}
                n = min(a.shape[1] for a in parts.values())
                rest = np.sum([a[:, :n] for k, a in parts.items() if k != "vocals"], axis=0)
                chosen.append((source, digest, name, _all_windows(parts["vocals"][:, :n], rest,
                                                                  clip_seconds=clip_seconds), None))
            except (AudioError, SeparationError, SegmentError, ValueError) as exc:
                report(Failure(source, f"{source}: cannot choose its clips: {exc}"))
    else:
        wholes: list[tuple[Path, str, str, Path, float]] = []
        for source, digest, name in pending:
            folder = staging / "whole" / digest[:16]
            try:
                audio = load_audio(source, sr=SR, min_seconds=MIN_CLIP_S, max_seconds=MAX_SOURCE_S)
                (audio,), gain_db = fit_full_scale(audio)
                wholes.append((source, digest, name, write_wav(folder / "whole.wav", audio, sr=SR),
                               gain_db))
            except AudioError as exc:
                report(Failure(source, str(exc)))
        try:
            results = separate([w[3] for w in wholes], [w[3].parent / "sep" for w in wholes], model=separator,
                               progress=progress) if wholes else []
        except SeparationError as exc:
            for source, *_ in wholes:
                report(Failure(source, f"{source}: {exc}"))
            results = []
        for (source, digest, name, whole_path, gain_db), stems in zip(wholes, results):
            try:
                vocal = load_audio(stems.roles["vocal"], sr=SR, min_seconds=0.0, max_seconds=None,
                                   allow_silent=True)
                rest = cast(np.ndarray, sum(load_audio(stems.roles[r], sr=SR, min_seconds=0.0, max_seconds=None,
                                                       allow_silent=True) for r in ("harmonic", "percussion")))
                windows = _all_windows(vocal, rest, clip_seconds=clip_seconds)
            except (AudioError, SegmentError) as exc:
                report(Failure(source, f"{source}: cannot choose its clips: {exc}"))
                continue
            chosen.append((source, digest, name, windows, WholeSeparation(whole_path, stems, gain_db)))
    for source, digest, name, windows, whole in chosen:
        _write_choice(cache_dir, digest, windows, **key)
        for plan in _auto_plans(source, name, digest, windows, clips_per_file, whole):
            if is_known(plan):
                skipped += 1
            else:
                plans.append(plan)
    return plans, skipped


def _cut_from_whole(plan: ClipPlan, folder: Path) -> PreparedClip:
    """An auto clip: its audio and every stem cut from the whole recording's separation (same samples)."""
    assert plan.whole is not None
    stems = plan.whole.stems
    cut: dict[Path, str] = {}  # whole-file stem -> the clip's file name (a role may share a raw stem's file)

    def take(path: Path, target: Path, *, allow_silent: bool) -> str:
        if path not in cut:
            audio = load_audio(path, sr=SR, min_seconds=MIN_CLIP_S, max_seconds=None,
                               start_s=plan.start_s, duration_s=plan.duration_s, allow_silent=allow_silent)
            cut[path] = store_audio(target, audio, sr=SR).relative_to(folder).as_posix()
        return cut[path]

    audio_name = take(plan.whole.audio, folder / "clip", allow_silent=False)
    info = audio_info(folder / audio_name)
    prepared = PreparedClip(plan, folder, audio_name, SR, round(info.frames / SR, 6),
                            gain_db=plan.whole.gain_db)
    separator = stems.methods["vocal"]  # the vocal role is the separator's own vocals stem
    for name, path in stems.raw.items():
        prepared.stems.append((name, "raw", take(path, folder / "sep" / Path(path).stem, allow_silent=True),
                               separator))
    for role, path in stems.roles.items():
        prepared.stems.append((role, "role", take(path, folder / "sep" / Path(path).stem, allow_silent=True),
                               stems.methods[role]))
    return prepared


def cut_clip(plan: ClipPlan, folder: Path) -> PreparedClip:
    """Load and validate the clip's audio and store it (FLAC, 44.1 kHz stereo, see audio.store_audio) in `folder`.

    Imported stems are stored with it; an auto clip takes its stems from the
    whole recording's separation (`plan.whole`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if plan.whole is not None:
        return _cut_from_whole(plan, folder)
    if plan.source.is_dir():
        from generation.separation import import_stems

        stems = import_stems(plan.source)
        # a song may lack a part (no bass, say): a silent stem is kept, the mix must not be silent
        loaded = {name: _load(path, plan, allow_silent=True) for name, path in stems.raw.items()}
        if not np.any(np.abs(np.sum(list(loaded.values()), axis=0)) > 1e-3):
            raise IngestError(f"{plan.source}: all stems are silent")
        length = min(a.shape[1] for a in loaded.values())
        names = list(loaded)
        mix = np.sum([loaded[n][:, :length] for n in names], axis=0).astype(np.float32)
        (mix, *scaled), gain_db = fit_full_scale(mix, *(loaded[n][:, :length] for n in names))
        parts = dict(zip(names, scaled))
        prepared = _write_clip(plan, folder, mix)
        prepared.gain_db = gain_db
        files = {}
        for name, audio in parts.items():
            files[name] = store_audio(folder / name, audio, sr=SR).name
            prepared.stems.append((name, "raw", files[name], "stems"))
        _write_roles(prepared, parts, files, "stems")
        return prepared
    (audio,), gain_db = fit_full_scale(_load(plan.source, plan))
    prepared = _write_clip(plan, folder, audio)
    prepared.gain_db = gain_db
    return prepared


def _load(path: Path, plan: ClipPlan, *, allow_silent: bool = False) -> np.ndarray:
    return load_audio(path, sr=SR, min_seconds=MIN_CLIP_S, start_s=plan.start_s, duration_s=plan.duration_s,
                      allow_silent=allow_silent)


def _write_clip(plan: ClipPlan, folder: Path, audio: np.ndarray) -> PreparedClip:
    name = store_audio(folder / "clip", audio, sr=SR).name
    return PreparedClip(plan, folder, name, SR, round(audio.shape[1] / SR, 6))


ROLE_SOURCES = {"vocal": ("vocals",), "harmonic": ("bass", "other"), "percussion": ("drums",)}


def _write_roles(prepared: PreparedClip, parts: dict[str, np.ndarray], files: dict[str, str], method: str) -> None:
    """Record the three role stems: vocal = vocals, harmonic = bass + other, percussion = drums.

    A role made of one raw stem points at that stem's file `files[name]` (as
    the Spleeter path does); only a sum of several gets a file of its own,
    `role-<role>.flac`: a copy per single-stem role would cost a third more
    disk per clip for identical bytes.
    """
    for role, names in ROLE_SOURCES.items():
        present = [n for n in names if n in parts]
        if not present:
            raise IngestError(f"{prepared.plan.source}: no {' or '.join(names)} stem for the {role} role")
        if len(present) == 1:
            file = files[present[0]]
        else:
            summed = np.sum([parts[n] for n in present], axis=0)
            file = store_audio(prepared.folder / f"role-{role}", summed, sr=SR).name
        prepared.stems.append((role, "role", file, method))


def refit_full_scale(clip: PreparedClip) -> None:
    """When a separated stem came out beyond full scale (kept as float WAV by store_audio), scale the clip.

    Spleeter's outputs and the HPSS split can overshoot full scale a little
    even when their input does not (measured: an accompaniment of a Wesnoth
    excerpt at 1.02 from a clip at 0.999). The clip audio and every stem are
    then scaled by one common gain (fit_full_scale) and stored again, so they
    keep summing as before and all fit integer FLAC; `clip.gain_db` adds the
    gain. A clip whose files are all FLAC is left alone.
    """
    files = sorted({clip.audio_name, *(file for _, _, file, _ in clip.stems)})
    if all(Path(f).suffix == ".flac" for f in files):
        return
    loaded = [load_audio(clip.folder / f, sr=SR, min_seconds=0.0, max_seconds=None, allow_silent=True)
              for f in files]
    scaled, gain_db = fit_full_scale(*loaded)
    renamed = {f: store_audio(clip.folder / f, audio, sr=SR).relative_to(clip.folder).as_posix()
               for f, audio in zip(files, scaled)}
    clip.audio_name = renamed[clip.audio_name]
    clip.stems = [(name, kind, renamed[file], method) for name, kind, file, method in clip.stems]
    clip.gain_db = round(clip.gain_db + gain_db, 4)


def _separate_chunk(inputs: list[Path], out_dirs: list[Path], separator: str, progress: bool) -> list | str:
    """One Spleeter process over a chunk of clips (TensorFlow starts once per chunk): stems, or the error message.

    On Dask each worker gets one chunk, so Spleeter starts once per worker;
    the message comes back as a string so one chunk's failure spares the others.
    """
    from generation.errors import SeparationError
    from generation.separation import separate

    try:
        return separate(inputs, out_dirs, model=separator, progress=progress)
    except SeparationError as exc:
        return str(exc)


def separate_clips(clips: list[PreparedClip], *, separator: str, progress: bool = True,
                   client: Any = None) -> dict[str, Failure]:
    """Run the separator over the batch and record stems; returns failures by clip uid.

    Serial: one Spleeter process for the batch. With a Dask `client`
    (config.cluster): the batch is cut into one contiguous chunk per worker,
    each separated by one Spleeter process on its worker (same files, same
    stems; the workers need the Spleeter venv and MODEL_PATH at the same paths).
    """
    todo = [c for c in clips if not c.stems]
    if not todo:
        return {}
    n = min(worker_count(client), len(todo))
    size = -(-len(todo) // n)  # ceil
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    args = [([c.folder / c.audio_name for c in chunk], [c.folder / "sep" for c in chunk], separator,
             progress and client is None) for chunk in chunks]
    failures: dict[str, Failure] = {}
    for i, found in each_result(client if len(chunks) > 1 else None, _separate_chunk, args):
        if isinstance(found, str):
            failures.update({c.plan.uid: Failure(c.plan.source, f"{c.plan.source}: {found}") for c in chunks[i]})
        else:
            _record_stems(chunks[i], found, separator)
    return failures


def _record_stems(todo: list[PreparedClip], results: list, separator: str) -> None:
    """Add each clip's separated raw and role stems (paths relative to its folder) to `clip.stems`."""
    for clip, result in zip(todo, results):
        for name, path in result.raw.items():
            rel = path.relative_to(clip.folder).as_posix()
            clip.stems.append((name, "raw", rel, separator))
        for role, path in result.roles.items():
            rel = path.relative_to(clip.folder).as_posix()
            clip.stems.append((role, "role", rel, result.methods[role]))


def _analyse_path(path: str) -> dict:
    from generation.annotate_audio import analyse

    audio = load_audio(Path(path), sr=SR, min_seconds=MIN_CLIP_S)
    result = analyse(audio, sr=SR)
    return {
        "key_label": result.key.label,
        "tempo_bpm": float(result.tempo_bpm),
        "beats": [round(float(t), 4) for t in result.beats],
        "downbeats": [round(float(t), 4) for t in result.downbeats],
        "beats_per_bar": int(result.beats_per_bar),
    }


def _analyse_safely(path: str) -> dict | str:
    """`_analyse_path`, or the failure's message (so one clip's failure, on a worker too, spares the batch).

    madmom's processors are built once per process (generation.annotate_audio), so once per Dask worker.
    """
    try:
        return _analyse_path(path)
    except Exception as exc:  # one clip's failure must not sink the batch
        return str(exc) or type(exc).__name__


def analyse_clips(clips: list[PreparedClip], *, jobs: int = 1, progress: bool = True,
                  client: Any = None, on_clip: Callable[[str], None] | None = None) -> dict[str, Failure]:
    """Key, tempo, beats and downbeats for each clip (madmom); failures by uid.

    On the Dask `client`'s workers when given, else on a cluster from
    `config.cluster.dask_client(jobs)` (serial for jobs 1 and no scheduler).
    Annotated clips take tempo, beats and downbeats from the annotation; their key
    still comes from the audio (Harmonix has no key annotation).
    """
    if client is None and jobs > 1 and len(clips) > 1:
        with dask_client(jobs) as own:
            return analyse_clips(clips, progress=progress, client=own, on_clip=on_clip)
    failures: dict[str, Failure] = {}
    todo = list(clips)
    for clip in todo:
        if clip.plan.beat_window is not None:
            w = clip.plan.beat_window
            clip.tempo_bpm, clip.beats, clip.downbeats = w.tempo_bpm, w.beats, w.downbeats
            clip.beats_per_bar, clip.analysis_source = w.beats_per_bar, "annotated"
    with tqdm(total=len(todo), desc="analyse", unit="clip", disable=not progress) as bar:
        for n, found in each_result(client, _analyse_safely, [(str(c.folder / c.audio_name),) for c in todo]):
            clip = todo[n]
            if isinstance(found, str):
                failures[clip.plan.uid] = Failure(clip.plan.source, f"{clip.plan.source}: analysis failed: {found}")
            else:
                clip.key_label = found["key_label"]
                if clip.analysis_source != "annotated":
                    clip.tempo_bpm, clip.beats = found["tempo_bpm"], found["beats"]
                    clip.downbeats, clip.beats_per_bar = found["downbeats"], found["beats_per_bar"]
            bar.update(1)
            if on_clip is not None:
                on_clip(str(clip.plan.source))
    return failures


def prepare_clips(
    plans: list[ClipPlan],
    staging: Path,
    *,
    separator: str,
    jobs: int = 1,
    progress: bool = True,
    report: Callable[[Failure], None] = lambda f: None,
    on_analysed: Callable[[str], None] | None = None,
) -> list[PreparedClip]:
    """Cut, separate and analyse; failed clips are reported and their staging folders removed.

    `on_analysed(source)` is called as each clip's analysis ends (the last per-clip step), so a progress
    bar moves during a long batch, not only once it is stored.

    Separation and analysis run on Dask (config.cluster) with `jobs` > 1 or
    MASHLAB_DASK_SCHEDULER set: one cluster for both, so each worker starts
    Spleeter once and builds madmom's processors once.
    """
    if separator not in SEPARATORS:
        raise IngestError(f"unknown separator {separator!r}; choose one of {', '.join(SEPARATORS)}")
    if jobs < 1 or int(jobs) != jobs:
        raise IngestError(f"jobs must be a positive integer, got {jobs!r}")
    prepared: list[PreparedClip] = []
    for plan in tqdm(plans, desc="cut", unit="clip", disable=not progress):
        folder = staging / plan.uid
        try:
            prepared.append(cut_clip(plan, folder))
        except (AudioError, IngestError, ValueError) as exc:
            report(Failure(plan.source, str(exc)))
            shutil.rmtree(folder, ignore_errors=True)
    with dask_client(jobs if len(prepared) > 1 else 1) as client:
        failed = (separate_clips(prepared, separator=separator, progress=progress, client=client)
                  if separator != "stems" else {})
        for clip in prepared:
            if clip.plan.uid not in failed:
                try:
                    refit_full_scale(clip)
                except (AudioError, ValueError) as exc:
                    failed[clip.plan.uid] = Failure(clip.plan.source, f"{clip.plan.source}: {exc}")
        failed.update(analyse_clips([c for c in prepared if c.plan.uid not in failed], progress=progress,
                                    client=client, on_clip=on_analysed))
    good = []
    for clip in prepared:
        if clip.plan.uid in failed:
            report(failed[clip.plan.uid])
            shutil.rmtree(clip.folder, ignore_errors=True)
        else:
            good.append(clip)
    return good
