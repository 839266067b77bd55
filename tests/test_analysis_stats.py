"""Reliability and significance statistics, checked against numbers other people published.

Sources:
- pingouin's datasets `cronbach_alpha` and `cronbach_wide_missing` and the values in
  pingouin.cronbach_alpha's documentation (pingouin 0.5-0.7 docs, "Examples").
- scipy.stats.mannwhitneyu documentation example (Conover, Practical Nonparametric
  Statistics): males 19, 22, 16, 29, 24 vs females 20, 11, 17, 12.
- scipy.stats.wilcoxon documentation example (Cerning & Fisher, 1978, via Hollander &
  Wolfe): the 15 height differences of cross- vs self-fertilised Zea mays.
- pingouin's dataset `pairwise_tests` (mixed design: Gender between, Drug within), run
  through the project's significance table and compared with pingouin.pairwise_tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from analysis.errors import StatsError
from analysis.stats import (
    cronbach_alpha,
    holm,
    mann_whitney,
    pairwise_covariance,
    significance_level,
    t_interval,
    wilcoxon_signed_rank,
)
from analysis.tables import mos_table, significance_table

REFERENCE = Path(__file__).resolve().parent / "data"  # pingouin's published datasets, see data/README.md

MALES = [19, 22, 16, 29, 24]
FEMALES = [20, 11, 17, 12]
ZEA_MAYS_DIFFERENCES = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def reference_csv(name: str, **kwargs) -> pd.DataFrame:
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"reference dataset {path} is missing: the published pingouin datasets live in "
                    f"tests/data/ (see its README.md).")
    return pd.read_csv(path, encoding="utf-8-sig", **kwargs)


# --- Cronbach's alpha -------------------------------------------------------------------


def test_alpha_matches_pingouins_published_value_on_its_cronbach_alpha_dataset():
    long = reference_csv("cronbach_alpha.csv")
    wide = long.pivot(index="Subj", columns="Items", values="Scores")
    result = cronbach_alpha(wide.to_numpy(dtype=float))
    assert result.alpha == pytest.approx(0.5917188485995826, rel=1e-12)
    assert round(result.ci_low, 3) == 0.195
    assert round(result.ci_high, 3) == 0.840
    assert (result.n_observations, result.n_items) == (15, 10)


def test_alpha_with_pairwise_deletion_matches_the_published_missing_data_value():
    wide = reference_csv("cronbach_wide_missing.csv")
    assert wide.isna().any().any(), "the dataset is meant to have missing answers"
    result = cronbach_alpha(wide.to_numpy(dtype=float), nan_policy="pairwise")
    assert result.alpha == pytest.approx(0.732660835214447, rel=1e-12)


def test_alpha_agrees_with_pingouin_listwise_and_pairwise_on_the_missing_dataset():
    wide = reference_csv("cronbach_wide_missing.csv")
    for policy in ("pairwise", "listwise"):
        theirs, ci = pg.cronbach_alpha(data=wide, nan_policy=policy)
        ours = cronbach_alpha(wide.to_numpy(dtype=float), nan_policy=policy)
        assert ours.alpha == pytest.approx(theirs, rel=1e-12)
        if policy == "pairwise":
            assert [round(ours.ci_low, 3), round(ours.ci_high, 3)] == pytest.approx(list(ci), abs=1e-12)
    # Listwise, pingouin 0.7 still uses all 12 rows for the Feldt CI's degrees of freedom;
    # ours uses the complete rows that alpha was computed on.
    complete = int(wide.dropna().shape[0])
    assert cronbach_alpha(wide.to_numpy(dtype=float), nan_policy="listwise").n_observations == complete < 12


def test_pairwise_covariance_is_what_pandas_computes_with_pairwise_complete_rows():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 6, size=(40, 4)).astype(float)
    x[rng.random(x.shape) < 0.2] = np.nan
    assert np.allclose(pairwise_covariance(x), pd.DataFrame(x).cov().to_numpy(), rtol=1e-12, equal_nan=True)


def test_alpha_refuses_one_item_or_constant_scores():
    with pytest.raises(StatsError, match="at least 2 items"):
        cronbach_alpha(np.ones((5, 1)))
    with pytest.raises(StatsError, match="no variance"):
        cronbach_alpha(np.full((5, 3), 4.0))
    with pytest.raises(StatsError, match="nan_policy"):
        cronbach_alpha(np.ones((5, 3)), nan_policy="drop")


# --- Mann-Whitney U ---------------------------------------------------------------------


def test_mann_whitney_reproduces_scipys_documented_example_exact_and_asymptotic():
    exact = mann_whitney(MALES, FEMALES, method="exact")
    assert exact.statistic == 17.0
    assert exact.p == pytest.approx(0.1111111111111111, rel=1e-12)
    asymptotic = mann_whitney(MALES, FEMALES, method="asymptotic", use_continuity=True)
    assert asymptotic.statistic == 17.0
    assert asymptotic.p == pytest.approx(0.11134688653314041, rel=1e-12)
    assert asymptotic.method.startswith("asymptotic")


def test_mann_whitney_effect_size_is_the_rank_biserial_correlation():
    result = mann_whitney(MALES, FEMALES)
    # 17 of the 20 male-female pairs favour the male: r = 2 * 17 / 20 - 1 = 0.7 (pingouin's RBC).
    assert result.effect_size == pytest.approx(0.7)
    assert pg.mwu(MALES, FEMALES)["RBC"].iloc[0] == pytest.approx(result.effect_size)
    assert mann_whitney(FEMALES, MALES).effect_size == pytest.approx(-0.7)


def test_mann_whitney_on_tied_ratings_uses_the_tie_corrected_normal_approximation():
    top, bottom = [4, 5, 4, 3, 4], [2, 3, 2, 2, 3]
    result = mann_whitney(top, bottom)
    # By hand: U of top = 5 + 5 + 5 + 5 (the 4s and the 5) + 3 + 2 * 0.5 (the 3) = 24.
    # Tie groups: 2 x3, 3 x3, 4 x3, 5 x1; the variance is tie-corrected
    # (Lehmann): var = n1 n2 / 12 * ((N + 1) - sum(t^3 - t) / (N (N - 1))).
    n1 = n2 = 5
    tie_term = sum(t**3 - t for t in (3, 3, 3, 1))
    var = n1 * n2 / 12 * ((n1 + n2 + 1) - tie_term / ((n1 + n2) * (n1 + n2 - 1)))
    z = (24 - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    assert result.statistic == 24.0
    assert result.p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_mann_whitney_explains_why_it_cannot_run():
    with pytest.raises(StatsError, match="non-empty"):
        mann_whitney([], [1, 2])
    with pytest.raises(StatsError, match="same"):
        mann_whitney([3, 3], [3, 3, 3])


# --- Wilcoxon signed-rank ---------------------------------------------------------------


def test_wilcoxon_reproduces_scipys_documented_zea_mays_example():
    result = wilcoxon_signed_rank(ZEA_MAYS_DIFFERENCES)
    assert result.statistic == 24.0
    assert result.p == pytest.approx(0.041259765625, rel=1e-12)
    assert result.method == "exact"  # no ties, no zeros, n = 15 <= 50


def test_wilcoxon_effect_size_is_the_matched_pairs_rank_biserial_correlation():
    result = wilcoxon_signed_rank(ZEA_MAYS_DIFFERENCES)
    # W- = 10 + 14 = 24 (the ranks of 48 and 67), W+ = 120 - 24 = 96: r = (96 - 24) / 120.
    assert result.effect_size == pytest.approx(0.6)
    paired = pg.wilcoxon(np.array(ZEA_MAYS_DIFFERENCES, dtype=float), np.zeros(15), correction=False)
    assert paired["RBC"].iloc[0] == pytest.approx(result.effect_size)


def test_wilcoxon_with_ties_and_zeros_uses_the_normal_approximation_without_correction():
    x = np.array([4, 4, 5, 3, 4, 2, 5, 4])
    y = np.array([3, 2, 3, 3, 2, 2, 4, 3])
    result = wilcoxon_signed_rank(x, y)
    # d = 1, 2, 2, 0, 2, 0, 1, 1: zeros dropped (wilcox), n = 6 with ties -> asymptotic.
    # Ranks of |d|: the three 1s share 2, the three 2s share 5; W+ = 21, W- = 0.
    # var = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 = 22.75 - 48/48 = 21.75.
    z = (0 - 6 * 7 / 4) / math.sqrt(21.75)
    assert result.method.startswith("asymptotic")
    assert result.statistic == 0.0
    assert result.p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert (result.n_a, result.n_used) == (8, 6)
    assert result.effect_size == pytest.approx(1.0)


def test_wilcoxon_refuses_all_zero_differences():
    with pytest.raises(StatsError, match="zero"):
        wilcoxon_signed_rank([3, 4, 5], [3, 4, 5])


# --- levels, Holm, intervals ------------------------------------------------------------


def test_levels_follow_the_papers_marks():
    assert [significance_level(p) for p in (0.0004, 0.001, 0.009, 0.04, 0.05, 0.5)] == [
        ".001", ".01", ".01", ".05", "×", "×"]
    assert significance_level(float("nan")) == ""
    assert significance_level(None) == ""


def test_holm_matches_pingouin_and_skips_missing_tests():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005])
    adjusted = holm(p)
    _, theirs = pg.multicomp([0.01, 0.04, 0.03, 0.005], method="holm")
    assert np.isnan(adjusted[2])
    assert np.allclose(adjusted[[0, 1, 3, 4]], theirs)
    # By hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06.
    assert adjusted.tolist()[:2] == pytest.approx([0.03, 0.06])


def test_t_interval_uses_students_t_and_is_null_for_a_single_value():
    low, high = t_interval(np.array([3.0, 2.0]), np.array([1.0, np.nan]), np.array([4, 1]))
    # t(0.975, 3) = 3.182446305 (any t table): 3 +- 3.1824463 * 1 / 2.
    assert low[0] == pytest.approx(3 - 3.182446305284263 / 2)
    assert high[0] == pytest.approx(3 + 3.182446305284263 / 2)
    assert np.isnan(low[1]) and np.isnan(high[1])


# --- Tables 3/4 cells against pingouin.pairwise_tests on its published dataset ------------------


def _pairwise_dataset_as_medians(task: str) -> pd.DataFrame:
    """pingouin's `pairwise_tests` dataset (11 subjects, Gender between, Drug A/B/C within) as the
    stimulus medians of one task, aspect 'overall' only.

    retrieval: system = Drug, query = Subject, one stimulus per (Subject, Drug), so the best
    system is paired with each other one by subject, as queries pair systems in the study.
    generation: system = Gender, one stimulus per Subject with its mean over the three drugs
    (pingouin's `marginal=True` for a between factor in a mixed design).
    """
    df = reference_csv("pingouin_pairwise_tests.csv")
    if task == "retrieval":
        frame = df.rename(columns={"Drug": "system", "Subject": "query", "Scores": "median"})
        frame["stimulus"] = frame["query"].astype(str) + "-" + frame["system"]
    else:
        frame = (df.groupby(["Subject", "Gender"], as_index=False)["Scores"].mean()
                 .rename(columns={"Gender": "system", "Scores": "median"}))
        frame["query"] = 0
        frame["stimulus"] = frame["Subject"].astype(str)
    frame["task"], frame["group"], frame["aspect"], frame["n_ratings"] = task, "", "overall", 1
    return frame[["task", "stimulus", "system", "group", "query", "aspect", "median", "n_ratings"]]


def _overall_cells(task: str) -> pd.DataFrame:
    medians = _pairwise_dataset_as_medians(task)
    table = significance_table(medians, mos_table(medians), holm=True)
    cells = table[(table["aspect"] == "overall") & (table["comparison"] == "best_vs_other")]
    assert table.loc[table["aspect"] != "overall", "p"].isna().all()  # the other aspects have no data
    return cells.set_index("system_b")


def test_retrieval_cells_pair_by_query_and_agree_with_pingouin_on_its_pairwise_dataset():
    cells = _overall_cells("retrieval")
    df = reference_csv("pingouin_pairwise_tests.csv")
    theirs = pg.pairwise_tests(data=df, dv="Scores", within="Drug", subject="Subject", parametric=False)
    wide = df.pivot(index="Subject", columns="Drug", values="Scores")
    assert wide.mean().idxmax() == "B" and set(cells["system_a"]) == {"B"}  # best MOS: drug B, 5.09
    assert sorted(cells.index) == ["A", "C"]
    for other in ("A", "C"):
        cell = cells.loc[other]
        row = theirs[(theirs[["A", "B"]].apply(set, axis=1) == {"B", other})].iloc[0]
        # W = min(W+, W-) does not depend on the order of the pair: pingouin's W-val exactly
        assert cell["test"] == "wilcoxon" and cell["statistic"] == row["W_val"] and cell["n_a"] == 11
        # ties in |d| (and a zero for B-A): our documented normal approximation without continuity
        # correction. pingouin's own p is SciPy's default method, which changes across SciPy
        # versions (a permutation distribution for small n with ties in SciPy 1.17), so p is
        # checked against pingouin told the same method.
        same = pg.wilcoxon(wide["B"], wide[other], correction=False, method="asymptotic")
        assert cell["p"] == pytest.approx(same["p_val"].iloc[0], rel=1e-12)
        assert cell["effect_size"] == pytest.approx(same["RBC"].iloc[0], rel=1e-12)
        print(f"\nB vs {other}: W {cell['statistic']:g}, p {cell['p']:.4f} (pingouin's default method: "
              f"{row['p_unc']:.4f}), rank-biserial {cell['effect_size']:.3f}")
    _, holm_theirs = pg.multicomp(cells.loc[["A", "C"], "p"].to_numpy(), method="holm")
    assert cells.loc[["A", "C"], "p_holm"].to_numpy() == pytest.approx(holm_theirs, rel=1e-12)


def test_generation_cells_are_mann_whitney_and_agree_with_pingouin_on_its_pairwise_dataset():
    cells = _overall_cells("generation")
    df = reference_csv("pingouin_pairwise_tests.csv")
    theirs = pg.pairwise_tests(data=df, dv="Scores", between="Gender", within="Drug", subject="Subject",
                               parametric=False)
    row = theirs[theirs["Contrast"] == "Gender"].iloc[0]  # marginal: subject means over the drugs
    assert len(cells) == 1
    cell = cells.iloc[0]
    best, other = cell["system_a"], cells.index[0]
    assert {best, other} == {"F", "M"} and cell["test"] == "mann-whitney"
    assert (cell["n_a"], cell["n_b"]) == ((5, 6) if best == "F" else (6, 5))
    # pingouin reports U of its first group (row A); ours is U of the best system: U_a + U_b = n_a n_b
    expected_u = row["U_val"] if best == row["A"] else cell["n_a"] * cell["n_b"] - row["U_val"]
    assert cell["statistic"] == expected_u
    assert cell["p"] == pytest.approx(row["p_unc"], rel=1e-9)
