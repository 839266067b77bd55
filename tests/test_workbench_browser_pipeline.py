"""The whole workbench pipeline through its pages in chromium (issue 14, first done-when).

From an empty database: log in, create a MashupDB, upload 6 generated songs' mixes at once, ingest them with
Spleeter 2stems, generate original, unmatched (key, tempo, both) and matched candidates, train a tiny system
(its curve drawn), score with it, evaluate it (Table 1 on the systems page), render, design a study and open
it; then a participant in a fresh browser context rates a page, and the dashboard counts them.

Everything runs as in production (tests/live_site.py): gunicorn and one `manage.py db_worker` on one SQLite
file. Every job is watched on its own page: the progress bar is read from the DOM while the job is queued or
running and must end at 100 %.

Order: rendering comes after evaluate, which builds the test set (new candidates): one render job then
renders everything the study may show. Originals are drawn for 4 of the 6 vocal seeds only, since the test set
takes its originals from the seeds that have none yet (scoring.services.ensure_test_set).
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fixtures_songs import mix_files
from tests.live_site import Site, stop
from tests.rater import begin, fill, scores_for
from tests.test_analysis_page import PASSWORD, log_in

pytestmark = pytest.mark.slow

SONGS = dict(count=6, seed=0, seconds=14.0)  # 12 matched (key and tempo) pairs by their truth; ~2.4 MB each
CLIP_S = 12.0
DB = "pipe"
SYSTEM = "tiny"
TERMINAL = ("done", "failed", "cancelled")

READ_JOB = """() => ({state: document.getElementById('state').textContent,
  percent: Number(document.getElementById('bar').value), count: document.getElementById('count').textContent,
  current: document.getElementById('current').textContent, error: document.getElementById('error').textContent,
  log: document.getElementById('log').textContent})"""


@pytest.fixture
def site(module_tmp):
    s = Site(module_tmp)
    s.env["MASHLAB_JOB_STALE_S"] = "300"  # two shared cores: Spleeter may starve the heartbeat thread a while
    s.manage("migrate", "-v", "0")
    s.shell("from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user('analyst', password={PASSWORD!r}, is_staff=True); print(1)")
    s.songs = module_tmp / "upload"
    mix_files(s.songs, **SONGS)
    return s


class Pipeline:
    """The staff browser tab, the site, and the worker (for its log when a job goes wrong)."""

    def __init__(self, page: Any, site: Site, base: str, worker: Any) -> None:
        self.page, self.site, self.base, self.worker = page, site, base, worker

    def launch(self, stage: str, fields: dict[str, str | list[str]]) -> None:
        """Open the launch form from the jobs page's link, fill it (select, or fill for inputs), start the job."""
        page = self.page
        page.goto(self.base + "/work/")
        page.locator("main").get_by_role("link", name=stage, exact=True).click()
        self.submit(stage, fields)

    def submit(self, what: str, fields: dict[str, str | list[str]]) -> None:
        page = self.page
        for name, value in fields.items():
            box = page.locator(f"#id_{name}")
            if box.evaluate("e => e.tagName") == "SELECT":
                box.select_option(value)
            else:
                box.fill(str(value))
        page.click("#launch")
        try:
            page.wait_for_url("**/work/jobs/*/", timeout=30_000)
        except Exception:
            errors = page.locator(".errorlist").all_inner_texts()
            pytest.fail(f"the {what} form did not start a job: {errors or page.locator('main').inner_text()[:1500]}")

    def watch(self, what: str, *, timeout: float = 240, moving: bool = True) -> list[int]:
        """Read the job page's DOM until the job ends; fail, saying its state, error and log, unless it is done
        at 100 % (having shown a bar below 100 % first, when `moving`: a job of a second or less may be done
        before its page first loads). Returns the percentages seen, in order."""
        page, end = self.page, time.monotonic() + timeout
        seen: list[int] = []
        while True:
            now = page.evaluate(READ_JOB)
            if not seen or seen[-1] != now["percent"]:
                seen.append(now["percent"])
            if now["state"] in TERMINAL:
                break
            if self.worker.poll() is not None:
                pytest.fail(f"the db_worker exited ({self.worker.returncode}) during the {what} job "
                            f"({now['state']}):\n{self._worker_log()}")
            if time.monotonic() > end:
                pytest.fail(f"the {what} job ({page.url}) is still {now['state']} after {timeout:g} s at "
                            f"{now['percent']} % ({now['count']}, {now['current']}); log:\n{now['log'][-1500:]}")
            page.wait_for_timeout(250)
        if now["state"] != "done":
            pytest.fail(f"the {what} job ({page.url}) ended {now['state']}: {now['error']}\nlog:\n"
                        f"{now['log'][-1500:]}\nworker:\n{self._worker_log()}")
        assert now["percent"] == 100 and page.inner_text("#percent") == "100 %", (what, now)
        assert not moving or seen[0] < 100, f"the {what} job's bar was never seen below 100 %: {seen}"
        return seen

    def _worker_log(self) -> str:
        logs = sorted(self.site.root.glob("worker-*.log"))
        return logs[-1].read_text(errors="replace")[-3000:] if logs else ""


def test_the_workbench_pipeline_from_an_empty_database_to_a_rated_study_in_chromium(site, browser):
    worker = site.worker()
    server = None
    try:
        server, base = site.server()
        page = browser.new_page()
        page.set_default_timeout(30_000)
        run = Pipeline(page, site, base, worker)

        # --- log in, a new MashupDB, 6 mixes uploaded in one go
        log_in(page, SimpleNamespace(url=base), "/work/")
        assert page.url == base + "/work/", page.url
        page.locator("main").get_by_role("link", name="new MashupDB").click()
        page.fill("#id_name", DB)
        page.fill("#id_description", "six generated songs, through the browser")
        page.click("#create")
        page.wait_for_url(f"**/db/{DB}/")
        page.locator("#add-audio").get_by_role("link", name="upload audio").click()
        files = sorted(site.songs.iterdir())
        assert len(files) == 6
        page.set_input_files("#files", [str(p) for p in files])
        page.click("#upload")
        page.wait_for_url(f"**/work/db/{DB}/upload/")
        assert "Stored 6 file(s)" in page.inner_text("main"), page.inner_text("main")[:1000]
        assert page.locator("main li").all_inner_texts() == [p.name for p in files]

        # --- ingest with the cheapest separator that takes mixes
        page.click("#ingest")
        run.submit("ingest", {"separator": "spleeter:2stems", "clip_seconds": f"{CLIP_S:g}", "segment": "start",
                              "clips_per_file": "1"})
        seen = run.watch("ingest", timeout=420)
        assert 0 in seen, seen  # queued or separating at 0 %, then 100 %
        assert "MashupDB pipe" in page.locator("#links").inner_text()
        page.locator("#links").get_by_role("link", name=f"MashupDB {DB}").click()
        assert re.search(r"\b6 clips\b", page.inner_text("main")), page.inner_text("main")[:500]
        assert page.locator("td.key").count() == 6

        # --- candidates: originals for 4 of the 6 vocal seeds, each unmatched kind, matched
        for condition, count in (("original", 4), ("unmatched_key", 1), ("unmatched_tempo", 1),
                                 ("unmatched_both", 1), ("matched", 2)):
            run.launch("generate", {"db": DB, "condition": condition, "count": str(count), "seed": "0"})
            run.watch(f"generate {condition}", timeout=120, moving=False)
            assert re.search(rf"\b{count} created\b", page.inner_text("#log")), (condition, page.inner_text("#log"))

        # --- a tiny system, its curve drawn as the epochs land
        run.launch("train", {"db": DB, "arch": "postmix", "width": "0.125", "recipe": "pitch_band",
                             "epochs": "2", "seed": "0", "name": SYSTEM})
        run.watch("train", timeout=240)
        page.wait_for_selector("#curve svg.main-svg", timeout=30_000)
        assert page.locator("#curve .scatterlayer .trace").count() == 3  # train loss, val loss, val accuracy
        assert page.locator("#curve .scatterlayer .trace").first.locator(".point").count() == 2  # 2 epochs

        # --- score with it, evaluate it (Table 1)
        run.launch("score", {"system": SYSTEM, "db": DB})
        run.watch("score", timeout=180, moving=False)
        assert f"{SYSTEM}: 9 candidates scored" in page.inner_text("#log"), page.inner_text("#log")
        run.launch("evaluate", {"db": DB, "systems": [SYSTEM], "per_seed": "1", "seed": "0"})
        run.watch("evaluate", timeout=180, moving=False)
        page.locator("#links").get_by_role("link", name="Table 1 (systems)").click()
        row = page.locator("#table1 tbody tr").filter(has_text=SYSTEM)
        assert row.count() == 1, page.locator("#table1").inner_text()
        assert row.locator("td").nth(0).inner_text() == DB
        assert re.fullmatch(r"\d+ %", row.locator("td").nth(2).inner_text()), row.inner_text()  # accuracy

        # --- render everything (the test set too): the bar moves candidate by candidate
        run.launch("render", {"db": DB})  # condition: all
        seen = run.watch("render", timeout=420)
        assert any(0 < p < 100 for p in seen), f"the render bar never showed a step between 0 and 100 %: {seen}"
        rendered = int(re.search(r"(\d+) candidates rendered", page.inner_text("#log")).group(1))
        assert rendered == site.scalar("select count(*) from generation_candidate") > 10

        # --- design a study with the tiny system and open it
        page.goto(base + "/work/")
        page.locator("header").get_by_role("link", name="design a new study").click()
        page.fill("#id_name", "pipeline-study")
        page.select_option("#id_task", "generation")
        page.select_option("#id_db", DB)
        page.check(f"input[name=systems][value={SYSTEM}]")
        for name, value in (("top_n", "1"), ("bottom_n", "1"), ("ratings_per_page", "1"),
                            ("pages_per_participant", "1"), ("speed_share", "0")):
            page.fill(f"#id_{name}", value)
        page.get_by_role("button", name="Design").click()
        page.wait_for_load_state("load")
        if not re.search(r"/study/\d+/$", page.url):
            pytest.fail(f"the study was not designed: {page.locator('.errorlist, [role=alert]').all_inner_texts()}")
        dashboard = page.url
        assert page.inner_text("#study-state") == "draft"
        page.get_by_role("button", name="Open the study").click()
        page.wait_for_load_state("load")
        assert page.inner_text("#study-state") == "open"
        assert "Pages complete: 0 / 2" in page.inner_text("main")
        link = page.get_by_label("Participant link").input_value()
        assert "/study/s/" in link, link

        # --- a participant: no login, their own browser context
        rater = browser.new_context().new_page()
        begin(rater, f"{link}?PROLIFIC_PID=PIPE-1")
        rater.wait_for_selector("h1:has-text('Page')")
        assert rater.locator("h1").inner_text() == "Page 1 of 1"
        assert rater.locator("audio").count() == 2
        fill(rater, scores_for(1), "no")
        rater.locator("#submit-page").click()
        rater.wait_for_selector("#completion-code")
        assert rater.locator("#completion-code").inner_text().strip()

        page.goto(dashboard)
        text = page.inner_text("main")
        assert "Page ratings: 1 / 2" in text and "Pages complete: 1 / 2" in text, text[:1500]
        assert re.search(r"Participants: 1 \(0 active, 1 finished, 0 excluded", text), text[:1500]
        assert site.scalar("select count(*) from listening_rating r join listening_participant p "
                           "on r.participant_id = p.id where p.external_id = 'PIPE-1'") == 10
    finally:
        stop(worker)
        stop(server)
