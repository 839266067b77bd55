"""Load benchmark of the participant flow: N simulated participants against gunicorn, on SQLite or PostgreSQL.

    python benchmarks/load.py --participants 100 --db sqlite
    python benchmarks/load.py --participants 1000 --db postgres --concurrency 200

Everything runs on loopback and is started and stopped here: a fresh SQLite
file or a private PostgreSQL cluster (apt's binaries under
/usr/lib/postgresql/*/bin, initdb into a temp dir, run as the `postgres` user
when we are root, on a free port), migrations, a synthetic generation study
(one system, pages = participants x pages-per-participant / k, one tiny WAV
hard-linked for every stimulus), and gunicorn on a free port.

Each simulated participant does the real HTTP flow with its own cookie jar and
CSRF token: study link, consent, questionnaire, then its pages (GET the page,
fetch the first kilobyte of a clip with a Range request, POST the answers);
a share of them submit a page twice (replay). Every submission the server
acknowledged (302) is checked against the database afterwards:
lost = acknowledged ratings missing or different, duplicated = answers stored
more than once, over_assigned = pages with more than k done assignments.
Latencies are client-side over every request; submissions_per_s counts
acknowledged page submissions over the run's wall time.

Beside what the clients saw, the server's own time per request: gunicorn
writes an access log whose format ends in ``%(D)s`` (microseconds from the
request read to the response written, in the worker), and the run reads it
back per kind of request (page, clip, submit, consent, questionnaire). On 2
shared cores the gap between the two says how much of a client's wait was
queueing (kernel backlog, busy threads, the benchmark's own client threads)
rather than work the server did.

Last line: ``lost=… duplicated=… over_assigned=… submissions_per_s=… p50_ms=… p99_ms=… server_p50_ms=…
server_p99_ms=…``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from config.pgtemp import TempPostgres, free_port  # noqa: E402
from listening.aspects import ASPECTS  # noqa: E402

PY = sys.executable
ACCESS_FORMAT = '%(m)s %(U)s %(s)s %(D)s'
"""gunicorn access-log line: method, path (no query), status, microseconds spent in the worker on the request."""


# --------------------------------------------------------------------------- inside Django (subprocess modes)


def _django():
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def internal_setup(args) -> None:
    """Create the synthetic world and an open study; print its public token as JSON."""
    _django()
    import soundfile as sf
    from django.conf import settings

    from generation.models import Candidate, Clip, MashupDB
    from listening import services
    from listening.models import Study
    from scoring.models import Score, System

    k = args.ratings_per_page
    n_pages = max(2, -(-args.participants * args.pages_per_participant // k))
    media = Path(settings.MEDIA_ROOT)
    wav = media / "bench" / "tone.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 8000
    sf.write(wav, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    db = MashupDB.objects.create(name="bench")
    clips = Clip.objects.bulk_create(
        Clip(db=db, name=f"c{i}", source=f"c{i}", source_sha256=f"{i:064d}", start_s=0, duration_s=1,
             sample_rate=8000, audio_path="bench/tone.wav", key_label="C major", tempo_bpm=120, beats_per_bar=4,
             analysis_source="estimated") for i in range(20))
    clips = list(Clip.objects.filter(db=db).order_by("id"))
    cands = [Candidate(db=db, vocal_clip=c, harmonic_clip=c, percussion_clip=c, condition="original", duration_s=1,
                       seed=i, spec_key=f"o{i}", mix_path="bench/tone.wav") for i, c in enumerate(clips)]
    cands += [Candidate(db=db, vocal_clip=clips[i % 20], harmonic_clip=clips[(i + 1) % 20],
                        percussion_clip=clips[(i + 2) % 20], condition="matched", duration_s=1, seed=i,
                        spec_key=f"m{i}", mix_path="bench/tone.wav") for i in range(n_pages)]
    Candidate.objects.bulk_create(cands)
    system = System.objects.create(name="bench", arch="amu")
    rng = np.random.default_rng(0)
    Score.objects.bulk_create(Score(system=system, candidate=c, value=float(rng.random()))
                              for c in Candidate.objects.filter(db=db, condition="matched"))
    top = n_pages // 2
    study = services.design_generation_study(
        name="bench", db_name="bench", top_n=top, bottom_n=n_pages - top, seed=1,
        study_settings=services.StudySettings(ratings_per_page=k, pages_per_participant=args.pages_per_participant,
                                              client_limit=100_000, max_participants=100_000))  # all from loopback
    services.set_state(study, Study.State.OPEN)
    print(json.dumps({"public_token": study.public_token, "pages": study.pages.count(), "k": k}))


def internal_verify(args) -> None:
    """Compare the acknowledged answers (JSON file) with the database; print the counts as JSON."""
    _django()
    from django.db.models import Count

    from listening.models import Assignment, PageResponse, Rating, Study

    acks = json.loads(Path(args.acks).read_text())
    study = Study.objects.get(name="bench")
    stored: dict[str, dict[str, int]] = {}
    for a_id, pos, swapped, aspect, score in Rating.objects.filter(assignment__page__study=study).values_list(
            "assignment_id", "stimulus__position", "assignment__swapped", "aspect", "score"):
        stored.setdefault(str(a_id), {})[f"clip{(pos ^ swapped) + 1}_{aspect}"] = score  # clip n as shown
    lost = 0
    for ack in acks:
        got = stored.get(str(ack["assignment"]), {})
        lost += sum(got.get(f, None) != int(v) for f, v in ack["answers"].items() if f.startswith("clip"))
    dup_ratings = Rating.objects.values("participant", "stimulus", "aspect").annotate(n=Count("id")).filter(n__gt=1)
    dup_responses = PageResponse.objects.values("assignment").annotate(n=Count("id")).filter(n__gt=1)
    over = (Assignment.objects.filter(page__study=study, state="done").values("page").annotate(n=Count("id"))
            .filter(n__gt=study.ratings_per_page))
    print(json.dumps({"lost": lost, "duplicated": dup_ratings.count() + dup_responses.count(),
                      "over_assigned": over.count(), "ratings": Rating.objects.count(),
                      "responses": PageResponse.objects.count()}))


# --------------------------------------------------------------------------- databases


# --------------------------------------------------------------------------- simulated participants


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.by_kind_ms: dict[str, list[float]] = {}
        self.acks: list[dict] = []
        self.errors: list[str] = []
        self.finished = 0

    def timed(self, fn, *a, **kw):
        t0 = time.perf_counter()
        r = fn(*a, **kw)
        dt = (time.perf_counter() - t0) * 1000
        kind = request_kind(getattr(fn, "__name__", "").upper(), urlsplit(str(a[0])).path if a else "")
        with self.lock:
            self.latencies_ms.append(dt)
            self.by_kind_ms.setdefault(kind, []).append(dt)
        return r


def participant(i: int, base: str, public_token: str, stats: Stats, *, replay_share: float, deadline: float) -> None:
    import requests

    rng = np.random.default_rng([7, i])
    s = requests.Session()
    try:
        r = stats.timed(s.get, f"{base}/study/s/{public_token}/", params={"PROLIFIC_PID": f"bench{i}"})
        csrf = s.cookies.get("csrftoken")
        r = stats.timed(s.post, f"{base}/study/s/{public_token}/", data={"consent": "on", "csrfmiddlewaretoken": csrf},
                        headers={"Referer": base + "/"}, allow_redirects=False)
        if r.status_code != 302:
            raise RuntimeError(f"consent: {r.status_code}")
        home = base + r.headers["Location"]
        token = home.rstrip("/").split("/")[-1]
        r = stats.timed(s.post, f"{base}/study/p/{token}/questionnaire/", allow_redirects=False,
                        data={"listens_daily": "yes", "produces_music": "no", "csrfmiddlewaretoken": csrf})
        while time.monotonic() < deadline:
            r = stats.timed(s.get, home)
            if r.status_code != 200:
                raise RuntimeError(f"page: {r.status_code} {r.text[:200]}")
            m = re.search(r'action="(/study/p/[^"]+/page/(\d+)/)"', r.text)
            if m is None:
                with stats.lock:
                    stats.finished += 1
                return
            audio = re.search(r'src="(/study/p/[^"]+/clip/[^"]+)"', r.text)
            assert audio is not None, "a rating page links its clips"
            stats.timed(s.get, base + audio.group(1), headers={"Range": "bytes=0-1023"})
            answers = {f"clip{n}_{a}": str(int(rng.integers(1, 6))) for n in (1, 2) for a in ASPECTS}
            answers["heard_before"] = "no" if rng.random() < 0.8 else "yes"
            data = {**answers, "csrfmiddlewaretoken": csrf}
            r = stats.timed(s.post, base + m.group(1), data=data, allow_redirects=False)
            if r.status_code != 302:
                raise RuntimeError(f"submit: {r.status_code} {r.text[:200]}")
            with stats.lock:
                stats.acks.append({"assignment": int(m.group(2)), "answers": answers})
            if rng.random() < replay_share:  # double submit with other scores: must store nothing
                replay = {**data, **{k: "1" for k in answers if k.startswith("clip")}}
                r = stats.timed(s.post, base + m.group(1), data=replay, allow_redirects=False)
                if r.status_code != 302:
                    raise RuntimeError(f"replay: {r.status_code}")
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        with stats.lock:
            stats.errors.append(f"participant {i}: {exc}")


def start_gunicorn(env: dict, *, workers: int, threads: int, log_level: str, stdout=None,
                   access_log: Path | None = None):
    """gunicorn on a free loopback port, answering; returns (process, base URL).

    access_log: where gunicorn writes one `ACCESS_FORMAT` line per request (None: no access log).
    """
    import requests

    port = free_port()
    logging = ["--access-logfile", str(access_log), "--access-logformat", ACCESS_FORMAT] if access_log else []
    proc = subprocess.Popen(
        [str(Path(PY).parent / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--threads", str(threads), "-k", "gthread", "--backlog", "2048", "--timeout", "60",
         "--log-level", log_level, *logging], env=env, cwd=REPO, start_new_session=True, stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(base + "/admin/login/", timeout=30)
            return proc, base
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not answer within a minute")


REQUEST_KINDS: tuple[tuple[str, re.Pattern], ...] = (
    ("clip", re.compile(r"^GET /study/p/[^/]+/clip/")),
    ("submit", re.compile(r"^POST /study/p/[^/]+/page/\d+/$")),
    ("questionnaire", re.compile(r"^POST /study/p/[^/]+/questionnaire/$")),
    ("page", re.compile(r"^GET /study/p/[^/]+/$")),
    ("consent", re.compile(r"^(GET|POST) /study/s/")),
)


def request_kind(method: str, path: str) -> str:
    """The kind of a request (`REQUEST_KINDS`), 'other' when none matches."""
    return next((name for name, pattern in REQUEST_KINDS if pattern.match(f"{method} {path}")), "other")


def server_times(lines: list[str]) -> dict[str, list[float]]:
    """Milliseconds per request from `ACCESS_FORMAT` lines, by kind of request ('all' holds every one)."""
    out: dict[str, list[float]] = {"all": []}
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or not parts[3].isdigit():
            continue
        ms = int(parts[3]) / 1000
        out["all"].append(ms)
        out.setdefault(request_kind(parts[0], parts[1]), []).append(ms)
    return out


def time_summary(values_ms: list[float]) -> str:
    """'p50 … p99 … mean … ms (n …)' of a list of milliseconds."""
    a = np.asarray(values_ms, dtype=float)
    return (f"p50 {np.percentile(a, 50):.1f} p99 {np.percentile(a, 99):.1f} mean {a.mean():.1f} ms (n {len(a)})"
            if len(a) else "no requests")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    """SIGTERM the gunicorn process group, SIGKILL it if it is not gone within 20 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=100, help="Simulated participants (1..5000).")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--concurrency", type=int, default=0, help="Participants at once (default: all, at most 1000).")
    ap.add_argument("--pages-per-participant", type=int, default=3)
    ap.add_argument("--ratings-per-page", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
    ap.add_argument("--threads", type=int, default=8, help="Threads per gunicorn worker (gthread).")
    ap.add_argument("--replay-share", type=float, default=0.1, help="Share of submits sent twice.")
    ap.add_argument("--time-limit", type=float, default=300.0, help="Seconds the participants may run.")
    ap.add_argument("--internal", choices=["setup", "verify"], help=argparse.SUPPRESS)
    ap.add_argument("--acks", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.internal == "setup":
        return internal_setup(args)
    if args.internal == "verify":
        return internal_verify(args)
    if not 1 <= args.participants <= 5000:
        raise SystemExit("--participants must be in 1..5000")
    concurrency = min(args.concurrency or args.participants, args.participants, 1000)

    root = Path(tempfile.mkdtemp(prefix="mashlab-load-"))
    pg = TempPostgres(max_connections=400) if args.db == "postgres" else None
    gunicorn = None
    try:
        env = {**os.environ, "MEDIA_ROOT": str(root / "media"), "MASHLAB_DATA_DIR": str(root),
               "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_DEBUG": "0", "DATABASE_CONN_MAX_AGE": "60",
               "DJANGO_SETTINGS_MODULE": "config.settings", "MASHLAB_LOG_LEVEL": "ERROR"}
        (root / "static").mkdir()
        env["DATABASE_URL"] = pg.start().url if pg else f"sqlite:///{root / 'bench.sqlite3'}"
        t0 = time.perf_counter()
        subprocess.run([PY, str(REPO / "manage.py"), "migrate", "-v", "0"], env=env, check=True, cwd=REPO)
        out = subprocess.run([PY, __file__, "--internal", "setup", "--participants", str(args.participants),
                              "--pages-per-participant", str(args.pages_per_participant),
                              "--ratings-per-page", str(args.ratings_per_page)],
                             env=env, check=True, cwd=REPO, capture_output=True, text=True)
        info = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"[load] {args.db}: migrated and designed {info['pages']} pages in {time.perf_counter() - t0:.1f} s")
        access_log = root / "access.log"
        gunicorn, base = start_gunicorn(env, workers=args.workers, threads=args.threads, log_level="warning",
                                        access_log=access_log)
        time.sleep(0.2)
        log_start = access_log.stat().st_size if access_log.exists() else 0  # skip the readiness probes
        stats = Stats()
        deadline = time.monotonic() + args.time_limit
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for i in range(args.participants):
                pool.submit(participant, i, base, info["public_token"], stats, replay_share=args.replay_share,
                            deadline=deadline)
        wall = time.perf_counter() - start
        acks_file = root / "acks.json"
        acks_file.write_text(json.dumps(stats.acks))
        out = subprocess.run([PY, __file__, "--internal", "verify", "--acks", str(acks_file)], env=env, check=True,
                             cwd=REPO, capture_output=True, text=True)
        check = json.loads(out.stdout.strip().splitlines()[-1])
        lat = np.array(stats.latencies_ms) if stats.latencies_ms else np.zeros(1)
        with open(access_log, "rb") as fh:
            fh.seek(log_start)
            served = server_times(fh.read().decode("utf-8", "replace").splitlines())
        server = np.array(served["all"]) if served["all"] else np.zeros(1)
        for line in stats.errors[:5]:
            print(f"[load] error: {line}")
        print(f"[load] {args.participants} participants ({concurrency} at once), {stats.finished} finished, "
              f"{len(stats.errors)} errors, {len(stats.acks)} pages acknowledged, {check['ratings']} ratings stored, "
              f"{len(lat)} requests in {wall:.1f} s; gunicorn {args.workers}x{args.threads} gthread")
        print(f"[load] clients saw:       {time_summary(stats.latencies_ms)}")
        print(f"[load] server's own time: {time_summary(served['all'])} (gunicorn access log, %(D)s)")
        for kind in [name for name, _ in REQUEST_KINDS] + ["other"]:
            if served.get(kind) or stats.by_kind_ms.get(kind):
                print(f"[load]   {kind:<13} server {time_summary(served.get(kind, []))}; "
                      f"clients {time_summary(stats.by_kind_ms.get(kind, []))}")
        print(f"lost={check['lost']} duplicated={check['duplicated']} over_assigned={check['over_assigned']} "
              f"submissions_per_s={len(stats.acks) / wall:.1f} p50_ms={np.percentile(lat, 50):.1f} "
              f"p99_ms={np.percentile(lat, 99):.1f} server_p50_ms={np.percentile(server, 50):.1f} "
              f"server_p99_ms={np.percentile(server, 99):.1f}")
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
