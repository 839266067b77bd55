"""Soak test of the participant flow under faults: nothing acknowledged may be lost, duplicated or over-assigned.

    python benchmarks/soak.py --participants 200 --db sqlite
    python benchmarks/soak.py --participants 200 --db postgres

Loopback only, bounded in count (--participants <= 2000) and time
(--time-limit); it starts and stops everything itself: a fresh SQLite file or a
throw-away PostgreSQL cluster (config.pgtemp.TempPostgres), migrations, the
synthetic study of benchmarks/load.py (with a short reservation, --reservation-s,
and fewer page slots than the participants want, so the last pages are fought
over), and gunicorn on a free port.

Participants (the real HTTP flow, own cookie jar and CSRF token) misbehave at
random, each seeded by its number: refresh a page before answering, submit
twice at the same time (double click), go back and resubmit a done page with
other answers, answer too late (after the reservation ran out), or abandon the
study holding a page (its reservation must expire and the page go to someone
else), or load their page in several tabs at once. A flooding client joins
200 times with one PID (it must come back to one participant) and holds the
page it gets without answering. The last fifth arrive all at once, after the others, on whatever pages
are still open. Meanwhile gunicorn workers are killed with SIGKILL at random
(--kills; the master respawns them) and, with PostgreSQL, the server is
restarted once. A request that fails (connection reset, 5xx) is retried the way
a browser would: the same POST again, or a reload.

At the end every answer the server acknowledged (302 after a submit) is
compared with the database by load.py's verifier: lost = acknowledged ratings
missing or different, duplicated = answers stored more than once,
over_assigned = pages with more than k done assignments.

Last line: ``lost=… duplicated=… over_assigned=… submissions=… p50_ms=… p99_ms=…``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import load  # type: ignore[import-not-found]  # noqa: E402  benchmarks/load.py: the synthetic study, the verifier, Stats

from config.pgtemp import TempPostgres  # noqa: E402

PY = sys.executable
ASPECTS = load.ASPECTS


class SoakStats(load.Stats):
    """load.Stats plus counters of the faults seen and the misbehaviours done."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


class Flow:
    """One participant's HTTP session that retries transport errors and 5xx like a browser would."""

    def __init__(self, base: str, stats: SoakStats, *, deadline: float) -> None:
        import requests

        self.requests = requests
        self.base = base
        self.stats = stats
        self.deadline = deadline
        self.s = requests.Session()

    def call(self, method: str, url: str, **kw):
        """The response of the first attempt that is not a transport error or 5xx (at most 30 attempts)."""
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        for attempt in range(30):
            if time.monotonic() > self.deadline + 60:
                raise RuntimeError("time limit")
            try:
                t0 = time.perf_counter()
                r = self.s.request(method, url if url.startswith("http") else self.base + url, **kw)
                dt = (time.perf_counter() - t0) * 1000
            except self.requests.RequestException:
                self.stats.count("retried_transport")
                time.sleep(0.2 + 0.1 * attempt)
                continue
            if r.status_code >= 500:
                self.stats.count(f"retried_{r.status_code}")
                time.sleep(0.2 + 0.1 * attempt)
                continue
            with self.stats.lock:
                self.stats.latencies_ms.append(dt)
            return r
        raise RuntimeError(f"{method} {url}: no answer after 30 attempts")


def _answers(rng: np.random.Generator) -> dict[str, str]:
    answers = {f"clip{n}_{a}": str(int(rng.integers(1, 6))) for n in (1, 2) for a in ASPECTS}
    answers["heard_before"] = "no" if rng.random() < 0.8 else "yes"
    return answers


def participant(i: int, base: str, public_token: str, stats: SoakStats, *, reservation_s: float,
                deadline: float, start_gate: threading.Barrier | None = None) -> None:
    """The real flow with seeded misbehaviour; acknowledged submissions go to stats.acks."""
    import re

    rng = np.random.default_rng([11, i])
    f = Flow(base, stats, deadline=deadline)
    try:
        if start_gate is not None:
            start_gate.wait(timeout=120)
        else:
            time.sleep(float(rng.uniform(0, 3)))
        f.call("GET", f"/study/s/{public_token}/", params={"PROLIFIC_PID": f"soak{i}"})
        csrf = f.s.cookies.get("csrftoken")
        r = f.call("POST", f"/study/s/{public_token}/", data={"consent": "on", "csrfmiddlewaretoken": csrf})
        if r.status_code != 302:
            raise RuntimeError(f"consent: {r.status_code}")
        home = r.headers["Location"]
        token = home.rstrip("/").split("/")[-1]
        r = f.call("POST", f"/study/p/{token}/questionnaire/",
                   data={"listens_daily": "yes", "produces_music": "no", "csrfmiddlewaretoken": csrf})
        abandon_after = int(rng.integers(0, 3)) if rng.random() < 0.1 else None
        done_pages: list[tuple[str, dict]] = []
        n_page = 0
        while time.monotonic() < deadline:
            if rng.random() < 0.2:  # several tabs load the page at once: still one reservation
                stats.count("parallel_loads")
                loads = [threading.Thread(target=f.call, args=("GET", home)) for _ in range(4)]
                for t in loads:
                    t.start()
                for t in loads:
                    t.join()
            r = f.call("GET", home)
            if r.status_code != 200:
                raise RuntimeError(f"page: {r.status_code} {r.text[:200]}")
            if 'id="come-back"' in r.text:  # every open page is held by someone else: wait, not finished
                stats.count("come_back")
                time.sleep(min(float(r.headers.get("Retry-After", "1")), reservation_s / 2))
                continue
            m = re.search(r'action="(/study/p/[^"]+/page/(\d+)/)"', r.text)
            if m is None:
                with stats.lock:
                    stats.finished += 1
                return
            action, assignment = m.group(1), int(m.group(2))
            if abandon_after is not None and n_page >= abandon_after:
                stats.count("abandoned")  # holds this page until its reservation expires
                return
            audio = re.search(r'src="(/study/p/[^"]+/clip/[^"]+)"', r.text)
            assert audio is not None, "a rating page links its clips"
            f.call("GET", audio.group(1), headers={"Range": "bytes=0-1023"})
            if rng.random() < 0.15:  # refresh: the same page again
                r = f.call("GET", home)
                stats.count("refreshed")
                if f'/page/{assignment}/"' not in r.text:  # slow retries outlived the reservation: fine
                    stats.count("refresh_got_another_page")
                    continue
            if rng.random() < 0.04:  # too slow: the reservation runs out first
                stats.count("late")
                time.sleep(reservation_s + 0.5)
            answers = _answers(rng)
            data = {**answers, "csrfmiddlewaretoken": csrf}
            if rng.random() < 0.1:  # double click: two identical POSTs at once
                stats.count("double_submits")
                results: list = [None, None]

                def twin(j: int, results: list = results, action: str = action, data: dict = data) -> None:
                    try:
                        results[j] = f.call("POST", action, data=data).status_code
                    except Exception as exc:  # noqa: BLE001 - reported below
                        results[j] = exc

                threads = [threading.Thread(target=twin, args=(j,)) for j in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                codes = [c for c in results if isinstance(c, int)]
                status = 302 if 302 in codes else (codes[0] if codes else 0)
            else:
                status = f.call("POST", action, data=data).status_code
            if status == 302:
                with stats.lock:
                    stats.acks.append({"assignment": assignment, "answers": answers})
                done_pages.append((action, answers))
            elif status == 409:
                stats.count("expired_409")
            else:
                raise RuntimeError(f"submit: {status}")
            n_page += 1
            if done_pages and rng.random() < 0.1:  # back button: resubmit a done page with other answers
                old_action, old = done_pages[int(rng.integers(0, len(done_pages)))]
                other = {k: ("1" if v != "1" else "2") if k.startswith("clip") else v for k, v in old.items()}
                r = f.call("POST", old_action, data={**other, "csrfmiddlewaretoken": csrf})
                stats.count("back_resubmits")
                if r.status_code != 302:
                    raise RuntimeError(f"back-button resubmit: {r.status_code}")
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        with stats.lock:
            stats.errors.append(f"participant {i}: {exc}")


def flood(base: str, public_token: str, stats: SoakStats, *, deadline: float, n: int = 200) -> None:
    """A scripted client: one PID joining over and over, and bare joins; it must come back to one participant."""
    f = Flow(base, stats, deadline=deadline)
    for j in range(n):
        if time.monotonic() > deadline:
            break
        f.s.cookies.clear()
        r = f.call("GET", f"/study/s/{public_token}/", params={"PROLIFIC_PID": "flood"})
        if r.status_code == 302:  # the PID is known: back to its own participant, nobody new
            stats.count("flood_returned")
            continue
        csrf = f.s.cookies.get("csrftoken")
        r = f.call("POST", f"/study/s/{public_token}/", params={"PROLIFIC_PID": "flood"},
                   data={"consent": "on", "csrfmiddlewaretoken": csrf})
        stats.count(f"flood_{r.status_code}")
        if r.status_code == 302:
            f.call("GET", r.headers["Location"])  # holds a page it never answers


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes: the children of its master (from /proc, no psutil)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def chaos(master: int, pg: TempPostgres | None, stats: SoakStats, *, kills: int, every_s: float,
          stop: threading.Event, seed: int) -> None:
    """SIGKILL a random gunicorn worker `kills` times, every ~every_s s; restart PostgreSQL once, midway."""
    rng = random.Random(seed)
    restarted = pg is None
    for n in range(kills):
        if stop.wait(every_s * rng.uniform(0.6, 1.4)):
            return
        pids = worker_pids(master)
        if pids:
            victim = rng.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                stats.count("workers_killed")
            except ProcessLookupError:
                pass
        if pg is not None and not restarted and n >= kills // 2 - 1:
            t0 = time.perf_counter()
            pg.restart()
            stats.count("pg_restarts")
            stats.count("pg_restart_ms", int((time.perf_counter() - t0) * 1000))
            restarted = True
    if pg is not None and not restarted and not stop.wait(every_s):
        pg.restart()
        stats.count("pg_restarts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=200, help="Simulated participants (10..2000).")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--concurrency", type=int, default=100, help="First-wave participants at once.")
    ap.add_argument("--pages-per-participant", type=int, default=3)
    ap.add_argument("--ratings-per-page", type=int, default=3)
    ap.add_argument("--reservation-s", type=int, default=4, help="Seconds a page stays reserved.")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
    ap.add_argument("--threads", type=int, default=8, help="Threads per gunicorn worker (gthread).")
    ap.add_argument("--kills", type=int, default=5, help="gunicorn workers killed with SIGKILL.")
    ap.add_argument("--time-limit", type=float, default=150.0, help="Seconds the participants may run.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 10 <= args.participants <= 2000:
        raise SystemExit("--participants must be in 10..2000")

    root = Path(tempfile.mkdtemp(prefix="mashlab-soak-"))
    pg = TempPostgres(max_connections=400) if args.db == "postgres" else None
    gunicorn = None
    stop = threading.Event()
    try:
        env = {**os.environ, "MEDIA_ROOT": str(root / "media"), "MASHLAB_DATA_DIR": str(root),
               "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_DEBUG": "0", "DATABASE_CONN_MAX_AGE": "60",
               "DJANGO_SETTINGS_MODULE": "config.settings", "MASHLAB_LOG_LEVEL": "CRITICAL"}
        (root / "static").mkdir()
        env["DATABASE_URL"] = pg.start().url if pg else f"sqlite:///{root / 'soak.sqlite3'}"
        t0 = time.perf_counter()
        subprocess.run([PY, str(REPO / "manage.py"), "migrate", "-v", "0"], env=env, check=True, cwd=REPO)
        # fewer page slots than the participants want: the last ones fight over the last open pages
        capacity_participants = max(4, int(args.participants * 0.8))
        out = subprocess.run([PY, str(HERE / "load.py"), "--internal", "setup", "--participants",
                              str(capacity_participants), "--pages-per-participant", str(args.pages_per_participant),
                              "--ratings-per-page", str(args.ratings_per_page)],
                             env=env, check=True, cwd=REPO, capture_output=True, text=True)
        info = json.loads(out.stdout.strip().splitlines()[-1])
        subprocess.run([PY, str(REPO / "manage.py"), "shell", "-c",
                        ("from listening.models import Study; "
                         f"Study.objects.filter(name='bench').update(reservation_s={args.reservation_s})")],
                       env=env, check=True, cwd=REPO)
        print(f"[soak] {args.db}: {info['pages']} pages x k={info['k']} for {args.participants} participants, "
              f"reservation {args.reservation_s} s, set up in {time.perf_counter() - t0:.1f} s")
        server_log = open(root / "gunicorn.log", "w")  # noqa: SIM115 - closed with the run
        # Django logs every 4xx to the server log: keep it out of the report
        gunicorn, base = load.start_gunicorn(env, workers=args.workers, threads=args.threads, log_level="critical",
                                             stdout=server_log)

        stats = SoakStats()
        deadline = time.monotonic() + args.time_limit
        n_last = max(2, args.participants // 5)
        n_first = args.participants - n_last
        every_s = max(1.0, min(args.time_limit / (args.kills + 2), 3.0))
        killer = threading.Thread(target=chaos, args=(gunicorn.pid, pg, stats),
                                  kwargs={"kills": args.kills, "every_s": every_s, "stop": stop, "seed": args.seed},
                                  daemon=True)
        start = time.perf_counter()
        killer.start()
        flooder = threading.Thread(target=flood, args=(base, info["public_token"], stats),
                                   kwargs={"deadline": deadline}, daemon=True)
        flooder.start()
        with ThreadPoolExecutor(max_workers=min(args.concurrency, n_first)) as pool:
            for i in range(n_first):
                pool.submit(participant, i, base, info["public_token"], stats, reservation_s=args.reservation_s,
                            deadline=deadline)
        time.sleep(args.reservation_s + 1)  # the abandoned pages' reservations run out
        gate = threading.Barrier(n_last)
        with ThreadPoolExecutor(max_workers=n_last) as pool:
            for i in range(n_first, args.participants):
                pool.submit(participant, i, base, info["public_token"], stats, reservation_s=args.reservation_s,
                            deadline=deadline, start_gate=gate)
        flooder.join(timeout=120)
        wall = time.perf_counter() - start
        stop.set()
        killer.join(timeout=120)

        acks_file = root / "acks.json"
        acks_file.write_text(json.dumps(stats.acks))
        out = subprocess.run([PY, str(HERE / "load.py"), "--internal", "verify", "--acks", str(acks_file)], env=env,
                             check=True, cwd=REPO, capture_output=True, text=True)
        check = json.loads(out.stdout.strip().splitlines()[-1])
        lat = np.array(stats.latencies_ms) if stats.latencies_ms else np.zeros(1)
        for line in stats.errors[:5]:
            print(f"[soak] error: {line}")
        faults = " ".join(f"{k}={v}" for k, v in sorted(stats.counts.items()))
        print(f"[soak] {args.participants} participants, {stats.finished} finished, {len(stats.errors)} errors, "
              f"{len(stats.acks)} pages acknowledged, {check['ratings']} ratings stored, {len(lat)} requests "
              f"in {wall:.1f} s; gunicorn {args.workers}x{args.threads} gthread")
        print(f"[soak] {faults}")
        print(f"lost={check['lost']} duplicated={check['duplicated']} over_assigned={check['over_assigned']} "
              f"submissions={len(stats.acks)} p50_ms={np.percentile(lat, 50):.1f} p99_ms={np.percentile(lat, 99):.1f}")
    finally:
        stop.set()
        if gunicorn is not None:
            load.stop_gunicorn(gunicorn)
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
