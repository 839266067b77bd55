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
