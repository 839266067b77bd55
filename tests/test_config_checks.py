"""`manage.py check` reports each missing external tool with a stable id and hint, in the stage's own words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation import separation
from generation.errors import StretchError
from generation.stretch import adjust
from generation.tools import TOOLS, tool_hint, tool_problem

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = Path(os.environ.get("MODEL_PATH") or ROOT / "data" / "pretrained_models")


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def path_without(tmp_path: Path, missing: str) -> str:
    """A PATH folder with links to every known tool except `missing` (the ones installed here)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in TOOLS:
        found = shutil.which(name)
        if name != missing and found:
            (folder / name).symlink_to(found)
    return str(folder)


def require_everything() -> None:
    absent = [name for name in TOOLS if shutil.which(name) is None]
    if absent or not separation.spleeter_python().exists() or not separation.weights_present(
            "spleeter:2stems", root=WEIGHTS):
        pytest.skip(f"needs every tool installed (absent: {absent}), Spleeter's interpreter and 2stems weights "
                    f"in {WEIGHTS}; run scripts/setup.sh")


def test_with_everything_present_check_reports_no_mashlab_error():
    require_everything()
    result = manage_check({"MODEL_PATH": str(WEIGHTS)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mashlab.E" not in result.stdout + result.stderr


def test_it_reports_a_missing_rubberband_with_its_id_and_hint(tmp_path):
    require_everything()
    result = manage_check({"PATH": path_without(tmp_path, "rubberband"), "MODEL_PATH": str(WEIGHTS)})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # an Error stops the command
    assert "mashlab.E001" in output
    assert "the 'rubberband' command is not on PATH" in output
    assert "HINT: install it with: apt-get install rubberband-cli" in output
    assert "mashlab.E002" not in output and "mashlab.E003" not in output


def test_the_stretch_stage_says_the_same_sentence_as_the_check(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without(tmp_path, "rubberband"))
    problem = tool_problem("rubberband")
    assert problem is not None
    with pytest.raises(StretchError) as caught:
        adjust(np.zeros((2, 4410), dtype=np.float32), sr=44100, ratio=1.1)
    assert str(caught.value) == f"{problem}; {tool_hint('rubberband')}"


def test_a_missing_fluidsynth_is_a_warning_not_an_error(tmp_path):
    require_everything()
    result = manage_check({"PATH": path_without(tmp_path, "fluidsynth"), "MODEL_PATH": str(WEIGHTS)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "mashlab.W001" in output and "apt-get install fluidsynth" in output


def test_it_reports_a_missing_soundfont(tmp_path):
    require_everything()
    result = manage_check({"MASHLAB_SOUNDFONT": str(tmp_path / "none.sf2"), "MODEL_PATH": str(WEIGHTS)})
    output = result.stdout + result.stderr
    assert "mashlab.W002" in output and "none.sf2 not found" in output and "MASHLAB_SOUNDFONT" in output


def test_it_reports_missing_spleeter_interpreter_and_weights_as_the_separation_stage_does(tmp_path, monkeypatch):
    python = tmp_path / "no-venv" / "bin" / "python"
    empty = tmp_path / "weights"
    empty.mkdir()
    result = manage_check({"MASHLAB_SPLEETER_PYTHON": str(python), "MODEL_PATH": str(empty)})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"mashlab.E004) Spleeter's interpreter {python} is missing" in output
    assert "HINT: run scripts/setup.sh" in output
    assert f"mashlab.E005) Spleeter weights for spleeter:2stems are missing: no checkpoint in {empty / '2stems'}" in output
    assert "mashlab.W004" in output
    monkeypatch.setenv("MODEL_PATH", str(empty))
    message = separation.missing_weights_message("spleeter:2stems")
    assert message.startswith(separation.missing_weights_problem("spleeter:2stems"))
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.full((44100 * 2, 2), 0.1, dtype=np.float32), 44100)
    with pytest.raises(separation.SeparationError) as caught:
        separation.separate([clip], [tmp_path / "out"], model="spleeter:2stems", progress=False)
    assert str(caught.value) == message


def test_decoding_without_ffmpeg_says_the_checks_sentence(tmp_path, monkeypatch):
    from generation.audio import load_audio
    from generation.errors import AudioError

    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg and ffprobe installed (apt-get install ffmpeg)")
    song = tmp_path / "song.m4a"  # AAC: libsndfile cannot read it, ffprobe reads the header, ffmpeg decodes
    made = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
                           "-ac", "2", "-c:a", "aac", str(song)], capture_output=True)
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("PATH", path_without(tmp_path, "ffmpeg"))
    with pytest.raises(AudioError) as caught:
        load_audio(song)
    assert str(caught.value) == f"{song}: {tool_problem('ffmpeg')}; {tool_hint('ffmpeg')}"
