"""From a ratings CSV to every output file, with the numbers worked out by hand.

The small study below: three raters per stimulus, the same scores on every aspect.

Generation (raters p1, p2, p3), overall-aspect medians:
  original  o1 (5,5,4)->5  o2 (4,5,5)->5  o3 (5,4,4)->4  o4 (3,5,4)->4      MOS 4.5
  A top     a_t1 (4,5,3)->4  a_t2 (5,4,5)->5  bottom a_b1 (2,1,2)->2  a_b2 (1,1,3)->1
            MOS all (4+5+2+1)/4 = 3.0, top 4.5, bottom 1.5
  B top     b_t1 (3,3,4)->3  b_t2 (4,2,3)->3  bottom b_b1 (2,3,2)->2  b_b2 (3,3,3)->3
            MOS all 11/4 = 2.75, top 3.0, bottom 2.5
  C top     c_t1 (2,2,2)->2 (no bottom stimulus)                        MOS 2.0
  Best generation system (original excluded): A.
Retrieval (raters r1, r2, r3), one stimulus per system and query:
  q1: original (5,5,5)->5  A (4,4,5)->4  B (3,2,3)->3
  q2: original (4,4,4)->4  A (3,4,4)->4  B (2,2,3)->2
  q3: original (5,4,5)->5  A (5,5,4)->5  B (4,3,3)->3
  q4: original (3,4,4)->4  A (3,3,2)->3  B (4,4,4)->4
  MOS original 4.5, A 4.0, B 3.0; best retrieval system: A.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis.errors import RatingsError
from analysis.ratings import ASPECTS, COLUMNS, load_ratings, validate_ratings
from analysis.report import analyse_ratings

GENERATION = {  # stimulus: (system, group, page, scores of p1, p2, p3)
    "o1": ("original", "", "g1", (5, 5, 4)),
    "o2": ("original", "", "g2", (4, 5, 5)),
    "o3": ("original", "", "g3", (5, 4, 4)),
    "o4": ("original", "", "g4", (3, 5, 4)),
    "a_t1": ("A", "top", "g1", (4, 5, 3)),
    "a_t2": ("A", "top", "g2", (5, 4, 5)),
    "a_b1": ("A", "bottom", "g3", (2, 1, 2)),
    "a_b2": ("A", "bottom", "g4", (1, 1, 3)),
    "b_t1": ("B", "top", "g5", (3, 3, 4)),
    "b_t2": ("B", "top", "g6", (4, 2, 3)),
    "b_b1": ("B", "bottom", "g7", (2, 3, 2)),
    "b_b2": ("B", "bottom", "g8", (3, 3, 3)),
    "c_t1": ("C", "top", "g9", (2, 2, 2)),
}
RETRIEVAL = {  # stimulus: (system, query, page, scores of r1, r2, r3)
    "q1_orig": ("original", "q1", "r1", (5, 5, 5)), "q1_A": ("A", "q1", "r1", (4, 4, 5)),
    "q1_B": ("B", "q1", "r2", (3, 2, 3)),
    "q2_orig": ("original", "q2", "r3", (4, 4, 4)), "q2_A": ("A", "q2", "r3", (3, 4, 4)),
    "q2_B": ("B", "q2", "r4", (2, 2, 3)),
    "q3_orig": ("original", "q3", "r5", (5, 4, 5)), "q3_A": ("A", "q3", "r5", (5, 5, 4)),
    "q3_B": ("B", "q3", "r6", (4, 3, 3)),
    "q4_orig": ("original", "q4", "r7", (3, 4, 4)), "q4_A": ("A", "q4", "r7", (3, 3, 2)),
    "q4_B": ("B", "q4", "r8", (4, 4, 4)),
}
SECONDS = {"p1": 30.0, "p2": 60.0, "p3": 90.0, "r1": 100.0, "r2": 110.0, "r3": 120.0}
T_975_3 = 3.182446305284263  # Student t, 97.5th percentile, 3 degrees of freedom (any t table)


def study_rows() -> list[dict[str, object]]:
    rows = []
    for stimulus, (system, group, page, scores) in GENERATION.items():
        for participant, score in zip(("p1", "p2", "p3"), scores):
            for aspect in ASPECTS:
                rows.append({
                    "task": "generation", "page": page, "participant": participant, "stimulus": stimulus,
                    "system": system, "group": group, "query": "", "aspect": aspect, "score": score,
                    # p3 had heard the vocal of every page but g1
                    "heard_before": "yes" if participant == "p3" and page != "g1" else "no",
                    "seconds": SECONDS[participant],
                    "listens_daily": "yes", "produces_music": "yes" if participant == "p1" else "no",
                })
    for stimulus, (system, query, page, scores) in RETRIEVAL.items():
        for participant, score in zip(("r1", "r2", "r3"), scores):
            for aspect in ASPECTS:
                rows.append({
                    "task": "retrieval", "page": page, "participant": participant, "stimulus": stimulus,
                    "system": system, "group": "", "query": query, "aspect": aspect, "score": score,
                    "heard_before": "no" if participant == "r1" else "yes",
                    "seconds": SECONDS[participant],
                    "listens_daily": "no", "produces_music": "no",
                })
    return rows


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    pd.DataFrame(study_rows(), columns=list(COLUMNS)).to_csv(path, index=False)
    return path


@pytest.fixture
def report(ratings_csv: Path, tmp_path: Path):
    return analyse_ratings(ratings_csv, tmp_path / "out", formats=("json", "csv", "latex", "html"))


def read_json(report, name: str) -> list[dict[str, object]]:
    return json.loads((report.out_dir / name).read_text())


def pick(rows, **where):
    found = [r for r in rows if all(r[k] == v for k, v in where.items())]
    assert len(found) == 1, f"expected one row for {where}, found {len(found)}"
    return found[0]


# --- MOS --------------------------------------------------------------------------------


def test_mos_is_the_mean_of_per_stimulus_medians(report):
    mos = read_json(report, "mos.json")
    expected = {
        ("generation", "original", "all"): 4.5, ("generation", "A", "all"): 3.0,
        ("generation", "A", "top"): 4.5, ("generation", "A", "bottom"): 1.5,
        ("generation", "B", "all"): 2.75, ("generation", "B", "top"): 3.0, ("generation", "B", "bottom"): 2.5,
        ("generation", "C", "all"): 2.0, ("retrieval", "original", "all"): 4.5,
        ("retrieval", "A", "all"): 4.0, ("retrieval", "B", "all"): 3.0,
    }
    for (task, system, group), value in expected.items():
        for aspect in ASPECTS:
            row = pick(mos, task=task, system=system, group=group, aspect=aspect)
            assert row["mos"] == pytest.approx(value), (task, system, group, aspect)
    assert set(mos[0]) == {"task", "system", "group", "aspect", "mos", "ci_low", "ci_high", "n_stimuli"}


def test_mos_interval_is_the_student_t_interval_of_the_medians(report):
    row = pick(read_json(report, "mos.json"), task="generation", system="A", group="all", aspect="overall")
    # medians 4, 5, 2, 1: mean 3, sd = sqrt(10/3), n = 4
    half = T_975_3 * math.sqrt(10 / 3) / 2
    assert row["n_stimuli"] == 4
    assert row["ci_low"] == pytest.approx(3 - half)
    assert row["ci_high"] == pytest.approx(3 + half)
    single = pick(read_json(report, "mos.json"), task="generation", system="C", group="all", aspect="overall")
    assert single["n_stimuli"] == 1 and single["ci_low"] is None and single["ci_high"] is None


# --- subjects ---------------------------------------------------------------------------


def test_subjects_table_counts_people_time_and_never_heard(report):
    subjects = read_json(report, "subjects.json")
    gen = pick(subjects, task="generation")
    ret = pick(subjects, task="retrieval")
    assert gen["n_subjects"] == 3 and ret["n_subjects"] == 3
    # every rater saw each page once: (30 + 60 + 90) / 3 per page, 9 pages each
    assert gen["mean_seconds_per_page"] == pytest.approx(60.0)
    assert ret["mean_seconds_per_page"] == pytest.approx(110.0)
    # p1 and p2 never heard any of the 9 vocals, p3 only g1's: (9 + 9 + 1) / 27
    assert gen["never_heard_share"] == pytest.approx(19 / 27)
    # r1 'no' on 8 pages, r2 and r3 'yes': 8 / 24
    assert ret["never_heard_share"] == pytest.approx(1 / 3)
    assert gen["produces_music_share"] == pytest.approx(1 / 3)
    assert ret["listens_daily_share"] == 0.0


def test_subjects_alpha_uses_the_k_ratings_in_participant_order_as_items(report):
    gen = pick(read_json(report, "subjects.json"), task="generation")
    items = pd.DataFrame([scores for _, _, _, scores in GENERATION.values()], columns=["p1", "p2", "p3"])
    alpha, ci = pg.cronbach_alpha(data=items)
    assert gen["cronbach_alpha"] == pytest.approx(alpha, rel=1e-12)
    assert [round(gen["alpha_ci_low"], 3), round(gen["alpha_ci_high"], 3)] == pytest.approx(list(ci))
    assert gen["alpha_reason"] is None


# --- significance -----------------------------------------------------------------------


def test_top_vs_bottom_is_mann_whitney_on_the_medians(report):
    cells = read_json(report, "significance.json")
    cell = pick(cells, task="generation", comparison="top_vs_bottom", system_a="A", aspect="overall")
    # top medians (4, 5) vs bottom (2, 1): U = 4 of 4 pairs, no ties;
    # z = (4 - 2 - 0.5) / sqrt(2 * 2 * 5 / 12) with the continuity correction
    z = 1.5 / math.sqrt(20 / 12)
    assert cell["test"] == "mann-whitney" and cell["method"].startswith("asymptotic")
    assert (cell["n_a"], cell["n_b"], cell["statistic"]) == (2, 2, 4.0)
    assert cell["p"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert cell["effect_size"] == 1.0
    assert cell["level"] == "×" and cell["reason"] is None


def test_a_system_with_too_few_stimuli_gets_a_reason_not_a_number(report):
    cells = read_json(report, "significance.json")
    top_only = pick(cells, task="generation", comparison="top_vs_bottom", system_a="C", aspect="rhythm")
    assert top_only["statistic"] is None and top_only["p"] is None and top_only["level"] == ""
    assert "1 top and 0 bottom" in top_only["reason"]
    one_stimulus = pick(cells, task="generation", comparison="best_vs_other", system_b="C", aspect="overall")
    assert one_stimulus["system_a"] == "A"
    assert "too few stimuli" in one_stimulus["reason"] and one_stimulus["p"] is None


def test_best_vs_other_excludes_the_original_and_uses_mann_whitney_for_generation(report):
    cells = [c for c in read_json(report, "significance.json")
             if c["task"] == "generation" and c["comparison"] == "best_vs_other"]
    assert {c["system_a"] for c in cells} == {"A"}
    assert {c["system_b"] for c in cells} == {"B", "C"}
    cell = pick(cells, system_b="B", aspect="harmony")
    # A medians 4, 5, 2, 1 vs B 3, 3, 2, 3: 4 and 5 beat all four B (8), 2 ties the B 2 (0.5),
    # 1 beats none -> U(A) = 8.5
    assert cell["statistic"] == 8.5
    assert cell["effect_size"] == pytest.approx(2 * 8.5 / 16 - 1)


def test_best_vs_other_in_retrieval_is_wilcoxon_paired_by_query(report):
    cell = pick(read_json(report, "significance.json"), task="retrieval", comparison="best_vs_other",
                system_b="B", aspect="overall")
    # per-query A - B: 1, 2, 2, -1; ranks of |d| 1.5, 3.5, 3.5, 1.5; W+ = 8.5, W- = 1.5
    # ties -> normal approximation: mean 5, var 7.5 - (6 + 6) / 48 = 7.25, no correction
    z = (1.5 - 5) / math.sqrt(7.25)
    assert cell["test"] == "wilcoxon" and cell["method"].startswith("asymptotic")
    assert (cell["n_a"], cell["n_b"], cell["statistic"]) == (4, 4, 1.5)
    assert cell["p"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert cell["effect_size"] == pytest.approx(0.7)
    assert not [c for c in read_json(report, "significance.json")
                if c["task"] == "retrieval" and c["comparison"] == "top_vs_bottom"]


def test_holm_adds_adjusted_p_and_marks_levels_by_it(ratings_csv, tmp_path):
    plain = analyse_ratings(ratings_csv, tmp_path / "plain", formats="json")
    adjusted = analyse_ratings(ratings_csv, tmp_path / "holm", formats="json", holm=True)
    assert plain.significance["p_holm"].isna().all()
    done = adjusted.significance[adjusted.significance["p"].notna()]
    assert (done["p_holm"] >= done["p"] - 1e-15).all()
    assert adjusted.manifest["holm"] is True


# --- files ------------------------------------------------------------------------------


def test_it_writes_every_file_and_a_manifest_that_hashes_the_input(report, ratings_csv):
    names = set(report.files)
    for table in ("mos", "subjects", "significance"):
        assert {f"{table}.json", f"{table}.csv", f"{table}.tex"} <= names
    assert {"figure4.html", "manifest.json", "ratings.csv", "stimulus_medians.csv"} <= names
    manifest = json.loads((report.out_dir / "manifest.json").read_text())
    assert manifest["input"]["file_sha256"] == hashlib.sha256(ratings_csv.read_bytes()).hexdigest()
    assert manifest["package_versions"]["scipy"]
    assert manifest["best_system"] == {"generation": "A", "retrieval": "A"}
    assert "Student-t" in manifest["definitions"]["mos_ci"]
    assert manifest["files"]["mos.json"] == hashlib.sha256((report.out_dir / "mos.json").read_bytes()).hexdigest()


def test_csv_exports_read_back_to_the_json_numbers(report):
    from_csv = pd.read_csv(report.out_dir / "mos.csv", keep_default_na=False, na_values=[""])
    from_json = pd.DataFrame(read_json(report, "mos.json"))
    assert list(from_csv.columns) == list(from_json.columns)
    assert np.allclose(from_csv["mos"], from_json["mos"])
    sig = pd.read_csv(report.out_dir / "significance.csv", keep_default_na=False)
    assert set(sig["level"]) <= {".001", ".01", ".05", "×", ""}


def test_latex_tables_use_booktabs_and_name_the_tests(report):
    tex = (report.out_dir / "significance.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "mann-whitney" in tex and "wilcoxon" in tex
    subjects = (report.out_dir / "subjects.tex").read_text()
    assert "Cronbach" in subjects and r"70\%" in subjects  # 19/27 never heard


def test_figure_html_holds_the_three_panels(report):
    html = (report.out_dir / "figure4.html").read_text()
    for title in ("Generation task", "Retrieval task", "Top (lighter) vs bottom (darker) stimuli"):
        assert title in html


def test_a_dataframe_in_the_csv_format_gives_the_same_tables(ratings_csv, tmp_path, report):
    frame = pd.read_csv(ratings_csv, dtype=str, keep_default_na=False)
    again = analyse_ratings(frame, tmp_path / "frame", formats="json", config={"seeds": {"pages": 7}})
    assert again.mos.equals(report.mos)
    assert again.significance.equals(report.significance)
    assert again.manifest["input"]["ratings_sha256"] == report.manifest["input"]["ratings_sha256"]
    assert again.manifest["seeds"] == {"pages": 7}


# --- bad input --------------------------------------------------------------------------


def write_rows(tmp_path: Path, rows: list[dict[str, object]], *, drop: str | None = None) -> Path:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if drop:
        frame = frame.drop(columns=[drop])
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_it_names_a_missing_column(tmp_path):
    with pytest.raises(RatingsError, match="missing column.*'heard_before'"):
        load_ratings(write_rows(tmp_path, study_rows(), drop="heard_before"))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("score", 6, r"row 7, column 'score': 6 is outside 1\.\.5"),
        ("score", 0, r"row 7, column 'score': 0 is outside"),
        ("score", "3.5", r"row 7, column 'score': '3\.5' is not an integer"),
        ("score", "good", r"row 7, column 'score': 'good' is not an integer"),
        ("aspect", "melody", r"row 7, column 'aspect': 'melody' is not one of"),
        ("task", "ranking", r"row 7, column 'task': 'ranking' is not one of"),
        ("group", "middle", r"row 7, column 'group'"),
        ("seconds", "-3", r"row 7, column 'seconds'"),
    ],
)
def test_it_names_the_row_and_column_of_a_bad_value(tmp_path, column, value, message):
    rows = study_rows()
    rows[5][column] = value  # the sixth rating is CSV row 7 (row 1 is the header)
    with pytest.raises(RatingsError, match=message):
        load_ratings(write_rows(tmp_path, rows))


def test_it_rejects_a_rating_given_twice_and_inconsistent_page_answers(tmp_path):
    rows = study_rows()
    with pytest.raises(RatingsError, match="rated stimulus 'o1' on 'overall' twice"):
        validate_ratings(pd.DataFrame(rows + [dict(rows[0])]))
    rows[1]["heard_before"] = "yes"  # p1 answered 'no' for page g1 on row 2
    with pytest.raises(RatingsError, match=r"row 3, column 'heard_before'.*participant 'p1', page 'g1'"):
        validate_ratings(pd.DataFrame(rows))


def test_a_stimulus_with_fewer_than_k_ratings_is_warned_about_and_still_analysed(tmp_path):
    rows = [r for r in study_rows() if not (r["stimulus"] == "b_b2" and r["participant"] == "p3")]
    report = analyse_ratings(write_rows(tmp_path, rows), tmp_path / "out", formats="json")
    short = [w for w in report.warnings if "fewer than k=3" in w]
    assert short and "'b_b2'" in short[0]
    assert short[0] in json.loads((tmp_path / "out" / "manifest.json").read_text())["warnings"]
    # b_b2 keeps the median of (3, 3) = 3, so the MOS is unchanged; alpha still computed (pairwise)
    row = report.mos[(report.mos["system"] == "B") & (report.mos["group"] == "all")
                     & (report.mos["aspect"] == "overall") & (report.mos["task"] == "generation")]
    assert row["mos"].iloc[0] == pytest.approx(2.75)
    assert report.subjects["cronbach_alpha"].notna().all()


def test_it_rejects_an_unknown_format_and_a_missing_file(tmp_path, ratings_csv):
    from analysis.errors import TableExportError

    with pytest.raises(TableExportError, match="unknown format.*pdf"):
        analyse_ratings(ratings_csv, tmp_path / "out", formats="json,pdf")
    with pytest.raises(RatingsError, match="does not exist"):
        analyse_ratings(tmp_path / "nope.csv", tmp_path / "out")


# --- the command ------------------------------------------------------------------------


def test_the_analyse_command_writes_the_files_and_prints_a_summary(ratings_csv, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("analyse", "--ratings", str(ratings_csv), "--out", str(tmp_path / "cmd"),
                 "--format", "json,csv", stdout=out, stderr=err)
    assert (tmp_path / "cmd" / "significance.json").is_file()
    assert not (tmp_path / "cmd" / "figure4.html").exists()
    assert "best generation system (highest overall MOS, original excluded): A" in out.getvalue()
    assert "too few stimuli" in err.getvalue()


def test_the_analyse_command_turns_bad_input_into_a_command_error(tmp_path, db):
    rows = study_rows()
    rows[0]["score"] = 9
    with pytest.raises(CommandError, match="row 2, column 'score': 9 is outside"):
        call_command("analyse", "--ratings", str(write_rows(tmp_path, rows)), "--out", str(tmp_path / "o"))
    with pytest.raises(CommandError, match="no study with id 1"):
        call_command("analyse", "--study", "1", "--out", str(tmp_path / "o"))
