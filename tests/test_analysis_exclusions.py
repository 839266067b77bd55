"""Quality control in the analysis: excluded raters are left out, listed with the reason, and both results given.

The world is tests/test_analysis_report.py's small study plus a fourth
generation rater p4 who gives 3 to everything. With p4 the overall median of
o1 is median(5, 5, 4, 3) = 4.5; without p4 it is median(5, 5, 4) = 5, as in
the report tests.
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from analysis.errors import AnalysisError, RatingsError
from analysis.exclusions import exclusion_table
from analysis.ratings import ASPECTS, COLUMNS
from analysis.report import WITHOUT_EXCLUSIONS, analyse_ratings
from tests.test_analysis_report import GENERATION, study_rows

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study


def rows_with_p4() -> list[dict[str, object]]:
    rows = study_rows()
    for stimulus, (system, group, page, _scores) in GENERATION.items():
        for aspect in ASPECTS:
            rows.append({"task": "generation", "page": page, "participant": "p4", "stimulus": stimulus,
                         "system": system, "group": group, "query": "", "aspect": aspect, "score": 3,
                         "heard_before": "no", "seconds": 4.0, "listens_daily": "no", "produces_music": "no"})
    return rows


def frame(rows, **per_participant) -> pd.DataFrame:
    """Ratings with optional flag columns: ``column={participant: value}``, others '' (or 'no' / 0)."""
    table = pd.DataFrame(rows, columns=list(COLUMNS)).astype(str)
    for column, values in per_participant.items():
        fill = {"excluded": "no", "straightliner": "no", "speeder_page": "no", "gold_failed": "0"}.get(column, "")
        table[column] = [str(values.get(p, fill)) for p in table["participant"]]
    return table


def mos_of(report, system: str, aspect: str = "overall", group: str = "all", task: str = "generation") -> float:
    m = report.mos
    return float(m[(m.system == system) & (m.aspect == aspect) & (m.group == group) & (m.task == task)]["mos"].iloc[0])


def test_a_recorded_exclusion_leaves_the_rater_out_and_both_results_are_written(tmp_path):
    table = frame(rows_with_p4(), excluded={"p4": "yes"},
                  exclusion_reason={"p4": "straight-lining (answer variance 0.000 < 0.1)"}, external_id={"p4": "PID-4"})
    report = analyse_ratings(table, tmp_path / "out", formats="json,csv,latex,html")
    alone = analyse_ratings(frame(study_rows()), tmp_path / "alone", formats="json")
    everyone = analyse_ratings(frame(rows_with_p4()), tmp_path / "everyone", formats="json")

    assert report.mos.equals(alone.mos) and report.significance.equals(alone.significance)
    assert report.without_exclusions.mos.equals(everyone.mos)
    med = report.medians
    assert float(med[(med.stimulus == "o1") & (med.aspect == "overall")]["median"].iloc[0]) == 5.0
    med = report.without_exclusions.medians
    assert float(med[(med.stimulus == "o1") & (med.aspect == "overall")]["median"].iloc[0]) == 4.5
    gen = report.subjects[report.subjects.task == "generation"].iloc[0]
    assert gen["n_subjects"] == 3

    excluded = json.loads((report.out_dir / "exclusions.json").read_text())
    assert len(excluded) == 7  # every rater listed (p1-p4, r1-r3), p4 excluded
    p4 = next(r for r in excluded if r["participant"] == "p4")
    assert p4["excluded"] is True and p4["external_id"] == "PID-4" and p4["decided_by"] == "study"
    assert p4["reason"].startswith("straight-lining")
    assert not any(r["excluded"] for r in excluded if r["participant"] != "p4")
    for name in ("mos.json", "subjects.json", "significance.json", "figure4.json", "mos.tex"):
        assert (report.out_dir / WITHOUT_EXCLUSIONS / name).is_file(), name
    again = json.loads((report.out_dir / WITHOUT_EXCLUSIONS / "subjects.json").read_text())
    assert next(r for r in again if r["task"] == "generation")["n_subjects"] == 4
    manifest = json.loads((report.out_dir / "manifest.json").read_text())
    assert manifest["exclusions"]["excluded"] == 1 and manifest["exclusions"]["participants"] == 7
    assert f"{WITHOUT_EXCLUSIONS}/mos.json" in manifest["files"]
    assert "1 of 7 participants excluded" in report.warnings[0]
    tex = (report.out_dir / "exclusions.tex").read_text()
    assert "p4" in tex and "PID-4" in tex and "straight-lining" in tex
    assert "p4 (PID-4): straight-lining" in report.summary()


def test_without_a_recorded_decision_the_flags_decide(tmp_path):
    rows = rows_with_p4()
    gold = {"p1": 1}
    straight = {"p4": "yes"}
    # p2 sped on every page (share 1 > 0.2); p3 on 1 of 9 generation pages (0.11 <= 0.2): kept
    pages = {r["page"] for r in rows if r["task"] == "generation"}
    table = frame(rows, gold_failed=gold, straightliner=straight)
    table["speeder_page"] = ["yes" if p == "p2" or (p == "p3" and page == "g1") else "no"
                             for p, page in zip(table["participant"], table["page"])]
    excl = exclusion_table(table).set_index("participant")
    assert excl.loc["p1", "excluded"] and "failed 1 gold page(s)" in excl.loc["p1", "reason"]
    assert excl.loc["p2", "excluded"] and f"{len(pages)} of {len(pages)} page(s) were speeder pages" in excl.loc["p2", "reason"]
    assert not excl.loc["p3", "excluded"] and excl.loc["p3", "speeder_pages"] == 1
    assert excl.loc["p4", "excluded"] and "straight-lining" in excl.loc["p4", "reason"]
    assert set(excl["decided_by"]) == {"flags"}
    report = analyse_ratings(table, tmp_path / "out", formats="json", config={"max_speeder_share": 0.2})
    gen = report.subjects[report.subjects.task == "generation"].iloc[0]
    assert gen["n_subjects"] == 1  # only p3 is left in generation


def test_ratings_without_quality_columns_exclude_nobody(tmp_path):
    report = analyse_ratings(frame(study_rows()), tmp_path / "out", formats="json")
    assert report.without_exclusions is None and not (report.out_dir / WITHOUT_EXCLUSIONS).exists()
    excluded = json.loads((report.out_dir / "exclusions.json").read_text())
    assert len(excluded) == 6 and not any(r["excluded"] for r in excluded)
    assert report.manifest["exclusions"]["excluded"] == 0
    assert "no participant excluded" in report.summary()


def test_a_malformed_flag_names_its_row_and_column(tmp_path):
    table = frame(study_rows(), excluded={"p2": "maybe"})
    with pytest.raises(RatingsError, match=r"column 'excluded': 'maybe' is not yes, no or empty"):
        analyse_ratings(table, tmp_path / "out", formats="json")
    table = frame(study_rows(), gold_failed={"p2": "-1"})
    with pytest.raises(RatingsError, match=r"column 'gold_failed'"):
        analyse_ratings(table, tmp_path / "out", formats="json")


def test_when_everyone_is_excluded_the_analysis_says_so(tmp_path):
    table = frame(study_rows(), excluded={p: "yes" for p in ("p1", "p2", "p3", "r1", "r2", "r3")})
    with pytest.raises(AnalysisError, match="every participant \\(6\\) is excluded"):
        analyse_ratings(table, tmp_path / "out", formats="json")


def test_a_csv_with_flag_columns_is_analysed_the_same_as_its_frame(tmp_path):
    table = frame(rows_with_p4(), excluded={"p4": "yes"}, exclusion_reason={"p4": "failed 1 of 1 gold page(s)"})
    path = tmp_path / "ratings.csv"
    table.to_csv(path, index=False)
    from_csv = analyse_ratings(path, tmp_path / "csv", formats="json,csv")
    from_frame = analyse_ratings(table, tmp_path / "frame", formats="json")
    assert from_csv.mos.equals(from_frame.mos)
    assert (tmp_path / "csv" / "ratings.csv").read_bytes() == path.read_bytes()  # the input, flags and all


# --------------------------------------------------------------------------- a study


def test_a_study_excluded_rater_is_shown_on_the_page_and_by_the_command(generation_study, client, tmp_path):
    from listening.models import Participant
    from tests.test_analysis_study import rate_everything

    rate_everything(generation_study, participants=8)
    flagged = Participant.objects.filter(study=generation_study).order_by("pk").first()
    # what the participant flow records when a rater fails a gold page (listening.quality)
    Participant.objects.filter(pk=flagged.pk).update(excluded=True, exclusion_reason="failed 1 of 1 gold page(s)",
                                                     flags={"gold_failed": 1, "gold_pages": 1})
    out = io.StringIO()
    call_command("analyse", "--study", str(generation_study.pk), "--out", str(tmp_path / "a"), "--format", "json",
                 stdout=out, stderr=io.StringIO())
    assert f"{flagged.pk} ({flagged.external_id}): failed 1 of 1 gold page(s)" in out.getvalue()
    excluded = json.loads((tmp_path / "a" / "exclusions.json").read_text())
    assert [r["participant"] for r in excluded if r["excluded"]] == [str(flagged.pk)]

    client.force_login(get_user_model().objects.create_user("analyst", password="x-123456-y", is_staff=True))
    r = client.get(f"/analysis/study/{generation_study.pk}/")
    html = r.content.decode()
    assert r.status_code == 200 and 'id="exclusions"' in html and "failed 1 of 1 gold page(s)" in html
    assert r.context["exclusions"]["excluded"] == 1
    assert 'id="mos-without-exclusions"' in html
    assert client.get(f"/analysis/study/{generation_study.pk}/files/{WITHOUT_EXCLUSIONS}%2Fmos.json").status_code == 404
    assert client.get(f"/analysis/study/{generation_study.pk}/without-exclusions/mos.csv").status_code == 200
