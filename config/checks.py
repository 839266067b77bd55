"""Django system checks for the external tools and paths the stages need (``manage.py check``).

Ids are stable: ``mashlab.E00n`` for what the pipeline cannot run without,
``mashlab.W00n`` for what only some paths need (the 4stems weights; the
tools that make the generated test songs). Each message and hint is the
sentence the stage itself raises when the tool is missing, taken from the one
place that writes it (`generation/tools.py`, `generation/separation.py`).
Registered by `generation.apps.GenerationConfig.ready`. An operator who runs
only the listening side can silence an id with ``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.checks import CheckMessage, register

TAG = "mashlab"

# check id -> tool name on PATH
TOOL_CHECKS: dict[str, str] = {
    "mashlab.E001": "rubberband",
    "mashlab.E002": "ffmpeg",
    "mashlab.E003": "ffprobe",
    "mashlab.W001": "fluidsynth",
    "mashlab.W003": "espeak-ng",
}
SPLEETER_INTERPRETER_ID = "mashlab.E004"
WEIGHTS_IDS = {"spleeter:2stems": "mashlab.E005", "spleeter:4stems": "mashlab.W004"}
SOUNDFONT_ID = "mashlab.W002"


@register(TAG)
def check_tools(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """One Error (required) or Warning (optional) per external command missing from PATH."""
    from generation.tools import TOOLS, tool_hint, tool_problem

    messages: list[CheckMessage] = []
    for check_id, name in TOOL_CHECKS.items():
        problem = tool_problem(name)
        if problem is not None:
            kind = checks.Error if TOOLS[name].required else checks.Warning
            messages.append(kind(problem, hint=tool_hint(name), id=check_id))
    return messages


@register(TAG)
def check_soundfont(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """A Warning when fluidsynth's General MIDI soundfont (MASHLAB_SOUNDFONT) is missing."""
    from generation.synth_songs import SOUNDFONT
    from generation.tools import soundfont_hint, soundfont_problem

    problem = soundfont_problem(SOUNDFONT)
    return [] if problem is None else [checks.Warning(problem, hint=soundfont_hint(), id=SOUNDFONT_ID)]


@register(TAG)
def check_spleeter(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Spleeter's interpreter (MASHLAB_SPLEETER_PYTHON) and weights (MODEL_PATH): 2stems required, 4stems optional."""
    from generation import separation

    messages: list[CheckMessage] = []
    problem = separation.interpreter_problem()
    if problem is not None:
        messages.append(checks.Error(problem, hint=separation.interpreter_hint(), id=SPLEETER_INTERPRETER_ID))
    root = separation.model_root()
    for model, check_id in WEIGHTS_IDS.items():
        if not separation.weights_present(model, root=root):
            kind = checks.Error if check_id.startswith("mashlab.E") else checks.Warning
            messages.append(kind(separation.missing_weights_problem(model, root=root),
                                 hint=separation.missing_weights_hint(model, root=root), id=check_id))
    return messages
