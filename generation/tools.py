"""The external command-line tools the stages run, and the one sentence that says one is missing.

Each tool's problem (what is missing, what it is for) and hint (how to get
it) are written here once: the stage that needs the tool raises
``f"{problem}; {hint}"`` and the Django system check (`config/checks.py`)
reports the same problem as its message and the same hint as its hint, so
an operator sees one wording at start-up (``manage.py check``) and deep in
a run. No Django here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TOOLS", "Tool", "soundfont_hint", "soundfont_problem", "tool_hint", "tool_message", "tool_problem"]


@dataclass(frozen=True)
class Tool:
    """An executable looked up on PATH.

    apt: the Debian package that installs it; needed_for: the stages that run
    it; required: False when only the generated test songs (and the demo)
    need it, so that its absence is a warning, not an error.
    """

    apt: str
    needed_for: str
    required: bool


TOOLS: dict[str, Tool] = {
    "rubberband": Tool("rubberband-cli", "pitch-shifting and time-stretching stems (generate, render)", True),
    "ffmpeg": Tool("ffmpeg", "decoding audio that libsndfile cannot read (MP3, AAC, modules) and Spleeter's input",
                   True),
    "ffprobe": Tool("ffmpeg", "reading the header of audio that libsndfile cannot read", True),
    "fluidsynth": Tool("fluidsynth", "rendering the generated test songs and MIDI pieces (tests, demo)", False),
    "espeak-ng": Tool("espeak-ng", "singing the generated test songs' vocals (tests, demo)", False),
}


def _tool(name: str) -> Tool:
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    return TOOLS[name]


def tool_problem(name: str) -> str | None:
    """None when the ``name`` command is on PATH, else one sentence saying it is missing and what needs it."""
    tool = _tool(name)
    if shutil.which(name) is not None:
        return None
    return f"the '{name}' command is not on PATH; it is needed for {tool.needed_for}"


def tool_hint(name: str) -> str:
    """How to install the ``name`` command (apt package)."""
    return f"install it with: apt-get install {_tool(name).apt}"


def tool_message(name: str) -> str | None:
    """The problem and its hint as one line, for a stage's error; None when the tool is present."""
    problem = tool_problem(name)
    return None if problem is None else f"{problem}; {tool_hint(name)}"


def soundfont_problem(path: Path) -> str | None:
    """None when the General MIDI soundfont file `path` exists, else the sentence saying it does not."""
    if Path(path).is_file():
        return None
    return f"soundfont {path} not found; fluidsynth needs it to render the generated test songs and MIDI pieces"


def soundfont_hint() -> str:
    """How to get the soundfont."""
    return "apt-get install fluid-soundfont-gm or set MASHLAB_SOUNDFONT to a General MIDI .sf2 file"
