"""The five aspects a clip is rated on, and the 1-5 scale, defined once (SPEC §4; no Django here).

`ASPECTS` is the order of the ratings export (the analysis' contract);
`ASPECT_TEXT` holds the paper's wording in the order the page asks them
(harmony first, overall last). `GOLD_ASPECTS` are those a gold page's
original must win on (listening.quality).
"""

from __future__ import annotations

ASPECTS: tuple[str, ...] = ("overall", "harmony", "rhythm", "timbre", "innovation")
ASPECT_TEXT: dict[str, tuple[str, str]] = {  # aspect -> (title, question), in page order
    "harmony": ("Harmony", "Harmonic compatibility between the vocals and the music."),
    "rhythm": ("Rhythm", "Rhythmic compatibility between the vocals and the music."),
    "timbre": ("Timbre", "Is each part clear and recognisable? Is the mix spectrally balanced and professional?"),
    "innovation": ("Innovation", "Does the combination sound unexpected without clashing?"),
    "overall": ("Overall", "Does it sound professionally made, not like a random remix?"),
}
SCALE: tuple[tuple[int, str], ...] = ((1, "awful"), (2, "poor"), (3, "fair"), (4, "good"), (5, "excellent"))
GOLD_ASPECTS: tuple[str, ...] = ("harmony", "rhythm")

assert set(ASPECT_TEXT) == set(ASPECTS) and set(GOLD_ASPECTS) <= set(ASPECTS)
