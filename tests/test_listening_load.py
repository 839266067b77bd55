"""The load benchmark end to end, small: concurrent participants on gunicorn + SQLite lose and duplicate nothing."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_concurrent_participants_on_gunicorn_lose_nothing_and_never_over_assign():
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "load.py"), "--participants", "24", "--db", "sqlite",
         "--concurrency", "12", "--workers", "2", "--threads", "4", "--ratings-per-page", "2", "--replay-share", "0.5"],
        capture_output=True, text=True, timeout=240, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    values = dict(re.findall(r"(\w+)=([\d.]+)", last))
    assert values["lost"] == "0" and values["duplicated"] == "0" and values["over_assigned"] == "0", last
    assert float(values["submissions_per_s"]) > 0
    assert "24 finished, 0 errors, 72 pages acknowledged, 720 ratings stored" in out.stdout
    # the server's own time per request, from gunicorn's access log, beside the clients'
    assert "[load] server's own time: p50" in out.stdout and "(gunicorn access log, %(D)s)" in out.stdout
    assert re.search(r"\[load\]   submit +server p50 [\d.]+ .*; clients p50", out.stdout), out.stdout
    seen = re.search(r"clients saw: .*\(n (\d+)\)", out.stdout).group(1)
    assert re.search(r"server's own time: .*\(n (\d+)\)", out.stdout).group(1) == seen  # every request logged
    assert float(values["server_p50_ms"]) > 0 and float(values["server_p99_ms"]) >= float(values["server_p50_ms"])


def test_the_access_log_is_read_as_milliseconds_per_kind_of_request():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import load  # type: ignore[import-not-found]  # benchmarks/load.py, on sys.path just above

    lines = ["GET /study/p/abc/ 200 12500", "POST /study/p/abc/page/7/ 302 40000", "GET /study/p/abc/clip/k/1 206 900",
             "GET /admin/login/ 200 3000", "garbage line", "POST /study/s/tok/ 302 2000"]
    times = load.server_times(lines)
    assert times["all"] == [12.5, 40.0, 0.9, 3.0, 2.0]
    assert times["page"] == [12.5] and times["submit"] == [40.0] and times["clip"] == [0.9]
    assert times["other"] == [3.0] and times["consent"] == [2.0]
    assert "%(D)s" in load.ACCESS_FORMAT
