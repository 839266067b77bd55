"""Reliability and significance statistics for listening-test ratings.

Plain numpy/scipy, no pandas and no Django: each function takes arrays and
returns a small frozen result, so the tables module can call it per cell and
tests can check it against published numbers.

Conventions (stated here once and repeated in the exported manifest):
- All tests are two-sided unless ``alternative`` says otherwise.
- Mann-Whitney U: ``statistic`` is U of the first sample ``a``
  (= number of pairs with a > b, ties counting one half); p from the normal
  approximation with continuity correction by default, because ratings on a
  1..5 scale are full of ties. Effect size: rank-biserial correlation
  r = 2 U_a / (n_a n_b) - 1 = P(a > b) - P(a < b), in [-1, 1], positive when
  ``a`` tends to be rated higher (Wendt 1972; pingouin's RBC).
- Wilcoxon signed-rank on d = x - y (zero_method "wilcox": zero differences
  dropped): ``statistic`` is scipy's two-sided statistic min(W+, W-); p exact
  when no ties and no zeros and n <= 50, otherwise from the normal
  approximation without continuity correction. Effect size: matched-pairs
  rank-biserial r = (W+ - W-) / (W+ + W-) (Kerby 2014), positive when x > y.
- scipy's ``method=`` is always passed explicitly; its 'auto' changed between
  versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from analysis.errors import StatsError

LEVELS: tuple[float, ...] = (0.001, 0.01, 0.05)
NOT_SIGNIFICANT = "×"
EXACT_WILCOXON_MAX_N = 50


@dataclass(frozen=True)
class AlphaResult:
    """Cronbach's alpha with its Feldt confidence interval.

    ``n_observations`` rows (here: stimuli) by ``n_items`` columns (here: the
    k ratings of each stimulus).
    """

    alpha: float
    ci_low: float
    ci_high: float
    n_observations: int
    n_items: int


@dataclass(frozen=True)
class TestResult:
    """One two-sample test: statistic, p, rank-biserial effect size and how p was found.

    ``n_a``/``n_b``: sample sizes (pairs, for the paired test); ``n_used``:
    observations that entered the ranks (Wilcoxon drops zero differences).
    """

    test: str
    method: str
    statistic: float
    p: float
    effect_size: float
    n_a: int
    n_b: int
    n_used: int

    __test__ = False  # not a pytest class, despite the name


def _as_float_array(values: object, *, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != ndim:
        raise StatsError(f"{name} must be {ndim}-D, got shape {arr.shape}.")
    return arr


def pairwise_covariance(items: np.ndarray) -> np.ndarray:
    """Covariance matrix of the columns of ``items`` under pairwise deletion.

    ``items``: float array (n_observations, k_items), NaN for missing.
    Entry (i, j) uses only the rows where both columns i and j are present,
    with their own means and the n - 1 denominator; this is what pandas'
    ``DataFrame.cov`` and R's ``cov(use="pairwise.complete.obs")`` compute.
    Pairs with fewer than two common rows give NaN. Returns (k, k).
    """
    x = _as_float_array(items, name="items", ndim=2)
    present = np.isfinite(x)
    m = present.astype(float)
    x0 = np.where(present, x, 0.0)
    n = m.T @ m  # common rows per pair
    sum_i = x0.T @ m  # sum of column i over rows where j is present
    sum_j = m.T @ x0  # sum of column j over rows where i is present
    sum_ij = x0.T @ x0
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = (sum_ij - sum_i * sum_j / n) / (n - 1)
    cov[n < 2] = np.nan
    return cov


def cronbach_alpha(
    items: np.ndarray, *, nan_policy: str = "pairwise", ci_level: float = 0.95
) -> AlphaResult:
    """Cronbach's alpha of ``items`` with the Feldt confidence interval.

    ``items``: (n_observations, k_items) array, NaN for missing. With
    ``nan_policy="pairwise"`` each covariance uses the rows where both items
    are present (so a stimulus that lost one rating still counts); with
    "listwise" rows with any NaN are dropped first.

    alpha = k / (k - 1) * (1 - trace(C) / sum(C)) with C the item covariance
    matrix. Feldt (1965) interval at ``ci_level``, with df1 = n - 1 and
    df2 = (n - 1)(k - 1):
    [1 - (1 - alpha) F_{1-a/2}, 1 - (1 - alpha) F_{a/2}], a = 1 - ci_level.
    Same definitions as pingouin.cronbach_alpha (which rounds the CI to 3
    decimals; this does not). n counts all rows under pairwise deletion.
    """
    x = _as_float_array(items, name="items", ndim=2)
    if nan_policy not in ("pairwise", "listwise"):
        raise StatsError(f"nan_policy must be 'pairwise' or 'listwise', got {nan_policy!r}.")
    if not 0.0 < ci_level < 1.0:
        raise StatsError(f"ci_level must be in (0, 1), got {ci_level}.")
    if nan_policy == "listwise":
        x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if k < 2:
        raise StatsError(f"Cronbach's alpha needs at least 2 items, got {k}.")
    if n < 2:
        raise StatsError(f"Cronbach's alpha needs at least 2 observations, got {n}.")
    cov = pairwise_covariance(x)
    if not np.isfinite(cov).all():
        raise StatsError("some pair of items has fewer than 2 observations in common.")
    total = cov.sum()
    if total <= 0:
        raise StatsError("the summed item covariance is not positive (no variance in the scores).")
    alpha = (k / (k - 1)) * (1.0 - np.trace(cov) / total)
    a = 1.0 - ci_level
    df1 = n - 1
    df2 = df1 * (k - 1)
    ci_low = 1.0 - (1.0 - alpha) * _st.f.isf(a / 2.0, df1, df2)
    ci_high = 1.0 - (1.0 - alpha) * _st.f.isf(1.0 - a / 2.0, df1, df2)
    return AlphaResult(float(alpha), float(ci_low), float(ci_high), int(n), int(k))


def mann_whitney(
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: str = "asymptotic",
    use_continuity: bool = True,
    alternative: str = "two-sided",
) -> TestResult:
    """Mann-Whitney U test of independent samples ``a`` (n_a,) and ``b`` (n_b,).

    ``method`` is "asymptotic" (normal approximation, tie-corrected) or
    "exact"; scipy is always told which. Returns U of ``a``, p and the
    rank-biserial correlation (see module docstring). NaNs are dropped.
    Raises :class:`StatsError` for an empty sample, or when every value is
    tied (p undefined).
    """
    x = _as_float_array(a, name="a", ndim=1)
    y = _as_float_array(b, name="b", ndim=1)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if method not in ("asymptotic", "exact"):
        raise StatsError(f"method must be 'asymptotic' or 'exact', got {method!r}.")
    if len(x) == 0 or len(y) == 0:
        raise StatsError(f"Mann-Whitney needs two non-empty samples, got n={len(x)} and n={len(y)}.")
    if method == "asymptotic" and np.ptp(np.concatenate([x, y])) == 0:
        raise StatsError("every value in both samples is the same; p is undefined.")
    res = _st.mannwhitneyu(
        x, y, use_continuity=use_continuity, alternative=alternative, method=method
    )
    u = float(res.statistic)
    n_a, n_b = len(x), len(y)
    return TestResult(
        test="mann-whitney",
        method=method + (" (continuity correction)" if method == "asymptotic" and use_continuity else ""),
        statistic=u,
        p=float(res.pvalue),
        effect_size=2.0 * u / (n_a * n_b) - 1.0,
        n_a=n_a,
        n_b=n_b,
        n_used=n_a + n_b,
    )


def wilcoxon_signed_rank(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    alternative: str = "two-sided",
    exact_max_n: int = EXACT_WILCOXON_MAX_N,
) -> TestResult:
    """Wilcoxon signed-rank test on paired samples ``x``, ``y`` (n,), or on differences ``x``.

    zero_method "wilcox": zero differences are dropped before ranking. p is
    exact when no |d| ties, no zeros and n <= ``exact_max_n``; otherwise it
    comes from the normal approximation without continuity correction
    (tie-corrected variance). Returns min(W+, W-) for two-sided (scipy's
    statistic), p and the matched-pairs rank-biserial correlation (module
    docstring). ``n_a`` and ``n_b`` are both the number of pairs, ``n_used``
    the number of non-zero differences. Pairs with a NaN are dropped.
    """
    d = _as_float_array(x, name="x", ndim=1)
    if y is not None:
        other = _as_float_array(y, name="y", ndim=1)
        if other.shape != d.shape:
            raise StatsError(f"x and y must pair up, got {d.shape} and {other.shape}.")
        d = d - other
    d = d[np.isfinite(d)]
    n_pairs = len(d)
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        raise StatsError(
            f"all {n_pairs} paired differences are zero (or there are none); the test is undefined."
        )
    ranks = _st.rankdata(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    has_ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    has_zeros = len(nonzero) < n_pairs
    exact = not has_ties and not has_zeros and len(nonzero) <= exact_max_n
    method = "exact" if exact else "asymptotic"
    res = _st.wilcoxon(
        d, zero_method="wilcox", correction=False, alternative=alternative, method=method
    )
    return TestResult(
        test="wilcoxon",
        method=method if exact else "asymptotic (no continuity correction)",
        statistic=float(res.statistic),
        p=float(res.pvalue),
        effect_size=(w_plus - w_minus) / (w_plus + w_minus),
        n_a=n_pairs,
        n_b=n_pairs,
        n_used=len(nonzero),
    )


def significance_level(p: float | None) -> str:
    """The paper's level mark: ".001", ".01", ".05" for p below it, "×" otherwise.

    NaN or None (no test) gives "".
    """
    if p is None or not math.isfinite(p):
        return ""
    for level in LEVELS:
        if p < level:
            return f"{level:g}".lstrip("0")
    return NOT_SIGNIFICANT


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family of tests, shape kept.

    Sorted ascending, p_(i) is multiplied by (m - i + 1), made monotone by a
    running maximum and capped at 1. NaNs (tests not computed) are left NaN
    and do not count in m.
    """
    p = _as_float_array(p_values, name="p_values", ndim=1)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok) == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise StatsError("p-values must lie in [0, 1].")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adjusted, 1.0)
    return out


def t_interval(
    means: np.ndarray, stds: np.ndarray, counts: np.ndarray, *, ci_level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t confidence interval of a mean, vectorised over groups.

    ``means``, ``stds`` (sample SD, ddof=1) and ``counts`` are (g,) arrays.
    Interval: mean ± t_{(1+ci_level)/2, n-1} · sd / sqrt(n); NaN where n < 2.
    Returns (low, high), each (g,).
    """
    mean = _as_float_array(means, name="means", ndim=1)
    sd = _as_float_array(stds, name="stds", ndim=1)
    n = _as_float_array(counts, name="counts", ndim=1)
    if not 0.0 < ci_level < 1.0:
        raise StatsError(f"ci_level must be in (0, 1), got {ci_level}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        half = _st.t.ppf((1.0 + ci_level) / 2.0, np.where(n >= 2, n - 1, np.nan)) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half
