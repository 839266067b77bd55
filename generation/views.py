"""Experimenter pages for MashupDBs: the library and its clips with playable stems.

Staff only, like the rest of the experimenter side: MEDIA_ROOT holds stimuli
(which a participant must not fetch outside their page) and checkpoints.
"""

from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, render

from config.ranged import ranged_file_response, safe_path
from generation.conditions import Condition
from generation.models import Candidate, Clip, MashupDB, Stem


@staff_member_required
def home(request):
    dbs = MashupDB.objects.annotate(n_clips=Count("clips")).order_by("name")
    return render(request, "generation/home.html", {"dbs": dbs})


@staff_member_required
def db_detail(request, name: str):
    db = get_object_or_404(MashupDB, name=name)
    clips = Clip.objects.filter(db=db).prefetch_related("stems").order_by("id")
    rows = [
        {"clip": c, "roles": [s for s in c.stems.all() if s.kind == Stem.Kind.ROLE]}
        for c in clips
    ]
    return render(request, "generation/db_detail.html", {"db": db, "rows": rows})


@staff_member_required
def media_file(request, relative: str):
    """Staff access to stored audio, with Range support for seeking; others are sent to the login page."""
    return ranged_file_response(request, safe_path(Path(settings.MEDIA_ROOT), relative))


@staff_member_required
def candidates(request, name: str):
    """Candidates of each condition with players; unrendered ones are listed without audio."""
    db = get_object_or_404(MashupDB, name=name)
    qs = Candidate.objects.filter(db=db).select_related("vocal_clip", "harmonic_clip", "percussion_clip")
    groups = []
    for condition in Condition:
        items = list(qs.filter(condition=condition.value).order_by("id")[:200])
        groups.append({"condition": condition.value, "items": items,
                       "total": qs.filter(condition=condition.value).count()})
    return render(request, "generation/candidates.html", {"db": db, "groups": groups})
