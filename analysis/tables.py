"""The analysis tables: MOS, subjects (paper Table 2), significance (paper Tables 3 and 4).

Every table is a pandas DataFrame with the exact columns the exports write.
Work is done with groupby on the whole ratings frame (a million ratings take
seconds); the only Python loop is over table cells (systems x aspects), each
of which runs one scipy test on per-stimulus medians.

No Django here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from analysis import stats
from analysis.errors import AnalysisError, StatsError
from analysis.ratings import ASPECTS, TASKS

MOS_COLUMNS: tuple[str, ...] = (
    "task", "system", "group", "aspect", "mos", "ci_low", "ci_high", "n_stimuli",
)
SUBJECTS_COLUMNS: tuple[str, ...] = (
    "task", "n_subjects", "mean_seconds_per_page", "never_heard_share",
    "cronbach_alpha", "alpha_ci_low", "alpha_ci_high",
    "n_page_views", "n_alpha_stimuli", "listens_daily_share", "produces_music_share", "alpha_reason",
)
SIGNIFICANCE_COLUMNS: tuple[str, ...] = (
    "task", "comparison", "system_a", "system_b", "aspect", "test", "method",
    "n_a", "n_b", "statistic", "p", "p_holm", "effect_size", "level", "reason",
)
GROUP_ALL = "all"
MWU_METHOD = "asymptotic (continuity correction)"  # the label stats.mann_whitney gives this method

DEFINITIONS: dict[str, str] = {
    "stimulus_median": (
        "For each stimulus and aspect, the median of its ratings (normally k=3, one per "
        "participant who saw its page)."
    ),
    "mos": (
        "Mean opinion score: per task, system and aspect, the mean of the per-stimulus "
        "medians. group 'all' pools every stimulus of the system; groups 'top' and 'bottom' "
        "(where the design has them, i.e. generation) use only those stimuli."
    ),
    "mos_ci": (
        "Student-t 95 % confidence interval of the mean of the per-stimulus medians: "
        "mos ± t(0.975, n-1) · sd / sqrt(n), n = n_stimuli, sd with ddof 1; null when n < 2."
    ),
    "n_subjects": "Distinct participant ids who rated anything in the task.",
    "n_page_views": "Distinct (participant, page) pairs of the task.",
    "n_alpha_stimuli": "Stimuli (observations) in the task's Cronbach's alpha.",
    "mean_seconds_per_page": (
        "Mean of 'seconds' (time on the page) over the task's distinct (participant, page) pairs."
    ),
    "never_heard_share": (
        "Share of the task's (participant, page) pairs answering heard_before = no."
    ),
    "cronbach_alpha": (
        "Cronbach's alpha on the overall aspect: each stimulus is an observation and its k "
        "ratings, ordered by participant id (string order), are the k items; a stimulus with "
        "fewer ratings leaves its last items missing (pairwise deletion in the covariance), "
        "ratings beyond the k-th are not used. alpha = k/(k-1) · (1 - trace(C)/sum(C)). "
        "CI: Feldt (1965) 95 % interval with df1 = n-1, df2 = (n-1)(k-1)."
    ),
    "listens_daily_share": "Share of the task's distinct participants answering listens_daily = yes.",
    "produces_music_share": "Share of the task's distinct participants answering produces_music = yes.",
    "top_vs_bottom": (
        "Per system and aspect: Mann-Whitney U test of its top stimuli's medians (sample a) "
        "against its bottom stimuli's medians (sample b); statistic = U of the top sample."
    ),
    "best_vs_other": (
        "The best system of a task is the one with the highest overall MOS (group 'all'), the "
        "original excluded; it is compared per aspect with every other system, the original "
        "excluded unless configured. Generation: Mann-Whitney U on per-stimulus medians "
        "(statistic = U of the best system). Retrieval: Wilcoxon signed-rank on per-query "
        "medians (median of the system's stimulus medians for that query), paired by query; "
        "queries missing for either system are left out."
    ),
    "mann_whitney": (
        "Two-sided; p from the normal approximation with tie correction and continuity "
        "correction (scipy method='asymptotic'). Effect size: rank-biserial r = 2U/(n_a n_b) - 1, "
        "positive when system_a is rated higher."
    ),
    "wilcoxon": (
        "Two-sided, zero_method 'wilcox' (zero differences dropped), d = system_a - system_b; "
        "exact p when there are no ties and no zeros and n <= 50, otherwise the normal "
        "approximation without continuity correction. Statistic = min(W+, W-). Effect size: "
        "matched-pairs rank-biserial r = (W+ - W-)/(W+ + W-), positive when system_a is higher."
    ),
    "level": (
        "'.001', '.01', '.05' when p (p_holm if Holm was requested) is below that level, "
        "'×' otherwise, empty when no test was computed."
    ),
    "holm": (
        "Holm-Bonferroni adjustment, on request, within each (task, comparison) family, i.e. "
        "within one paper table; null when not requested."
    ),
}


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of one analysis; every field is recorded in the manifest.

    ratings_per_stimulus: k, participants per page (paper: 3).
    original_system: the system name of the original (unadjusted) versions.
    ci_level: level of the MOS and alpha intervals.
    min_stimuli: fewest values per sample for a Mann-Whitney cell.
    min_pairs: fewest paired queries for a Wilcoxon cell.
    compare_with_original: include the original among the 'other' systems.
    seeds: the random seeds of the study design, copied to the manifest.
    study: the study's stored configuration (design, sizes); its hash goes in
        the manifest, so the files can be traced to the study that made them.
    max_speeder_share: where the ratings carry quality flags but no recorded
        exclusion, a rater with more than this share of speeder pages is
        excluded (analysis.exclusions).
    """

    ratings_per_stimulus: int = 3
    original_system: str = "original"
    ci_level: float = 0.95
    min_stimuli: int = 2
    min_pairs: int = 2
    compare_with_original: bool = False
    seeds: dict[str, int] = field(default_factory=dict)
    study: dict[str, object] = field(default_factory=dict)
    max_speeder_share: float = 0.2

    @classmethod
    def from_mapping(cls, config: Mapping[str, object] | None) -> "AnalysisConfig":
        """Build from a plain mapping (e.g. a study's stored config), rejecting unknown keys."""
        if config is None:
            return cls()
        if isinstance(config, AnalysisConfig):
            return config
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise AnalysisError(
                f"unknown analysis setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        made = cls(**dict(config))  # type: ignore[arg-type]
        made.check()
        return made

    def check(self) -> None:
        """Raise :class:`AnalysisError` for an out-of-range setting."""
        if not isinstance(self.ratings_per_stimulus, int) or self.ratings_per_stimulus < 2:
            raise AnalysisError(f"ratings_per_stimulus must be an integer >= 2, got {self.ratings_per_stimulus!r}.")
        if not 0.0 < float(self.ci_level) < 1.0:
            raise AnalysisError(f"ci_level must be in (0, 1), got {self.ci_level!r}.")
        if int(self.min_stimuli) < 1 or int(self.min_pairs) < 1:
            raise AnalysisError("min_stimuli and min_pairs must be >= 1.")
        if not isinstance(self.seeds, Mapping):
            raise AnalysisError(f"seeds must be a mapping of name to integer, got {self.seeds!r}.")
        if not 0.0 <= float(self.max_speeder_share) <= 1.0:
            raise AnalysisError(f"max_speeder_share must be in [0, 1], got {self.max_speeder_share!r}.")
        if not isinstance(self.study, Mapping):
            raise AnalysisError(f"study must be a mapping (the study's configuration), got {self.study!r}.")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ordered(frame: pd.DataFrame, *, original_system: str, by: list[str]) -> pd.DataFrame:
    """Sort by task, then the original first and other systems by name, then aspect order."""
    keys = frame.copy()
    sort_cols: list[str] = []
    for column in by:
        if column == "task":
            keys["_task"] = keys["task"].map({t: i for i, t in enumerate(TASKS)})
            sort_cols.append("_task")
        elif column in ("system", "system_a", "system_b"):
            keys["_orig"] = keys[column] != original_system
            sort_cols += ["_orig", column]
        elif column == "aspect":
            keys["_aspect"] = keys["aspect"].map({a: i for i, a in enumerate(ASPECTS)})
            sort_cols.append("_aspect")
        elif column == "group":
            keys["_group"] = keys["group"].map({GROUP_ALL: 0, "top": 1, "bottom": 2})
            sort_cols.append("_group")
        elif column == "comparison":
            keys["_cmp"] = keys["comparison"].map({"top_vs_bottom": 0, "best_vs_other": 1})
            sort_cols.append("_cmp")
        else:
            sort_cols.append(column)
    keys = keys.sort_values(sort_cols, kind="stable")
    return frame.loc[keys.index].reset_index(drop=True)


def stimulus_medians(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per (task, stimulus, aspect): the median of its ratings and how many there were.

    ``ratings``: a validated frame (analysis.ratings.validate_ratings).
    Returns columns task, stimulus, system, group, query, aspect, median (float),
    n_ratings (int).
    """
    grouped = ratings.groupby(["task", "stimulus", "aspect"], sort=False, observed=True)["score"]
    med = grouped.agg(median="median", n_ratings="size").reset_index()
    attrs = ratings.drop_duplicates(["task", "stimulus"])[["task", "stimulus", "system", "group", "query"]]
    med = med.merge(attrs, on=["task", "stimulus"], how="left", validate="many_to_one")
    med["median"] = med["median"].astype(float)
    return med[["task", "stimulus", "system", "group", "query", "aspect", "median", "n_ratings"]]


def _mos_of(grouped: pd.core.groupby.SeriesGroupBy, *, ci_level: float) -> pd.DataFrame:
    agg = grouped.agg(mos="mean", sd="std", n_stimuli="size").reset_index()
    low, high = stats.t_interval(
        agg["mos"].to_numpy(), agg["sd"].to_numpy(), agg["n_stimuli"].to_numpy(), ci_level=ci_level
    )
    agg["ci_low"], agg["ci_high"] = low, high
    return agg


def mos_table(medians: pd.DataFrame, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """MOS per task, system, group and aspect with a Student-t CI (see DEFINITIONS).

    ``medians``: output of :func:`stimulus_medians`. group is 'all' for every
    system, plus 'top' / 'bottom' rows where stimuli carry those groups.
    Returns :data:`MOS_COLUMNS`, sorted task, system (original first), group, aspect.
    """
    cfg = config or AnalysisConfig()
    pooled = _mos_of(
        medians.groupby(["task", "system", "aspect"], sort=False, observed=True)["median"],
        ci_level=cfg.ci_level,
    )
    pooled["group"] = GROUP_ALL
    grouped_part = medians[medians["group"].isin(["top", "bottom"])]
    parts = [pooled]
    if len(grouped_part):
        by_group = _mos_of(
            grouped_part.groupby(["task", "system", "group", "aspect"], sort=False, observed=True)["median"],
            ci_level=cfg.ci_level,
        )
        parts.append(by_group)
    table = pd.concat(parts, ignore_index=True)
    for column in ("task", "system", "group", "aspect"):
        table[column] = table[column].astype(str)
    table["n_stimuli"] = table["n_stimuli"].astype(int)
    table = _ordered(table, original_system=cfg.original_system, by=["task", "system", "group", "aspect"])
    return table[list(MOS_COLUMNS)]


def alpha_items(overall: pd.DataFrame, *, ratings_per_stimulus: int) -> np.ndarray:
    """The (n_stimuli, k) item matrix for Cronbach's alpha from overall-aspect ratings.

    Row = stimulus, column j = its j-th rating with participants in string
    order; NaN where a stimulus has fewer than k ratings; ratings past the
    k-th are dropped.
    """
    ordered = overall.sort_values(["stimulus", "participant"], kind="stable")
    rank = ordered.groupby("stimulus", sort=False, observed=True).cumcount().to_numpy()
    codes, uniques = pd.factorize(ordered["stimulus"], sort=False)
    keep = rank < ratings_per_stimulus
    items = np.full((len(uniques), ratings_per_stimulus), np.nan)
    items[codes[keep], rank[keep]] = ordered["score"].to_numpy(dtype=float)[keep]
    return items


def subjects_table(ratings: pd.DataFrame, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Paper Table 2 per task: subjects, time per page, 'never heard' share, Cronbach's alpha.

    ``ratings``: a validated frame. Alpha is computed on the overall aspect
    (see DEFINITIONS); when it cannot be computed its fields are NaN and
    ``alpha_reason`` says why. Returns :data:`SUBJECTS_COLUMNS`, one row per task present.
    """
    cfg = config or AnalysisConfig()
    pages = ratings.drop_duplicates(["task", "participant", "page"])
    page_stats = pages.groupby("task", sort=False).agg(
        n_page_views=("page", "size"),
        mean_seconds_per_page=("seconds", "mean"),
        never_heard_share=("heard_before", lambda s: float((s == "no").mean())),
    )
    people = ratings.drop_duplicates(["task", "participant"])
    people_stats = people.groupby("task", sort=False).agg(
        n_subjects=("participant", "size"),
        listens_daily_share=("listens_daily", lambda s: float((s == "yes").mean())),
        produces_music_share=("produces_music", lambda s: float((s == "yes").mean())),
    )
    rows = []
    overall = ratings[ratings["aspect"] == "overall"]
    for task in [t for t in TASKS if t in page_stats.index]:
        row: dict[str, object] = {"task": task}
        row.update(people_stats.loc[task].to_dict())
        row.update(page_stats.loc[task].to_dict())
        items = alpha_items(overall[overall["task"] == task], ratings_per_stimulus=cfg.ratings_per_stimulus)
        row["n_alpha_stimuli"] = int(items.shape[0])
        try:
            result = stats.cronbach_alpha(items, nan_policy="pairwise", ci_level=cfg.ci_level)
        except StatsError as exc:
            row.update(cronbach_alpha=np.nan, alpha_ci_low=np.nan, alpha_ci_high=np.nan,
                       alpha_reason=f"Cronbach's alpha not computed: {exc}")
        else:
            row.update(cronbach_alpha=result.alpha, alpha_ci_low=result.ci_low,
                       alpha_ci_high=result.ci_high, alpha_reason=None)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(SUBJECTS_COLUMNS))
    for column in ("n_subjects", "n_page_views", "n_alpha_stimuli"):
        table[column] = table[column].astype(int)
    return table


def _cell(task: str, comparison: str, system_a: str, system_b: str, aspect: str) -> dict[str, object]:
    return {
        "task": task, "comparison": comparison, "system_a": system_a, "system_b": system_b,
        "aspect": aspect, "test": None, "method": None, "n_a": 0, "n_b": 0,
        "statistic": np.nan, "p": np.nan, "p_holm": np.nan, "effect_size": np.nan,
        "level": "", "reason": None,
    }


def _fill(cell: dict[str, object], result: stats.TestResult) -> None:
    cell.update(test=result.test, method=result.method, n_a=result.n_a, n_b=result.n_b,
                statistic=result.statistic, p=result.p, effect_size=result.effect_size)


def _mwu_cell(cell: dict[str, object], a: np.ndarray, b: np.ndarray, *, min_n: int,
              what_a: str, what_b: str) -> None:
    cell.update(test="mann-whitney", method=MWU_METHOD, n_a=len(a), n_b=len(b))
    if len(a) < min_n or len(b) < min_n:
        cell["reason"] = (
            f"too few stimuli: {len(a)} {what_a} and {len(b)} {what_b}; Mann-Whitney needs at "
            f"least {min_n} in each sample."
        )
        return
    try:
        _fill(cell, stats.mann_whitney(a, b, method="asymptotic", use_continuity=True))
    except StatsError as exc:
        cell["reason"] = str(exc)


def best_system(mos: pd.DataFrame, task: str, *, original_system: str) -> str | None:
    """The system with the highest overall MOS (group 'all') in ``task``, the original excluded.

    Ties go to the system that sorts first by name. None when there is no candidate.
    """
    rows = mos[(mos["task"] == task) & (mos["group"] == GROUP_ALL) & (mos["aspect"] == "overall")
               & (mos["system"] != original_system)]
    if rows.empty:
        return None
    rows = rows.sort_values(["mos", "system"], ascending=[False, True], kind="stable")
    return str(rows["system"].iloc[0])


def significance_table(
    medians: pd.DataFrame,
    mos: pd.DataFrame,
    *,
    config: AnalysisConfig | None = None,
    holm: bool = False,
) -> pd.DataFrame:
    """Paper Tables 3 and 4 as one long table of test cells (see DEFINITIONS).

    ``medians``: :func:`stimulus_medians`; ``mos``: :func:`mos_table` (picks
    the best system). A cell that cannot be computed keeps statistic and p
    NaN and says why in ``reason``. With ``holm`` p_holm is filled per
    (task, comparison) and the level uses it.
    Returns :data:`SIGNIFICANCE_COLUMNS`.
    """
    cfg = config or AnalysisConfig()
    cells: list[dict[str, object]] = []
    samples = {key: grp.to_numpy() for key, grp in
               medians.groupby(["task", "system", "group", "aspect"], sort=False, observed=True)["median"]}
    pooled = {key: grp.to_numpy() for key, grp in
              medians.groupby(["task", "system", "aspect"], sort=False, observed=True)["median"]}
    empty = np.empty(0)
    present_tasks = set(medians["task"].unique())
    for task in [t for t in TASKS if t in present_tasks]:
        in_task = medians[medians["task"] == task]
        systems = sorted(in_task["system"].unique())
        grouped_systems = sorted(in_task.loc[in_task["group"].isin(["top", "bottom"]), "system"].unique())
        for system in grouped_systems:
            for aspect in ASPECTS:
                cell = _cell(task, "top_vs_bottom", system, system, aspect)
                top = samples.get((task, system, "top", aspect), empty)
                bottom = samples.get((task, system, "bottom", aspect), empty)
                _mwu_cell(cell, top, bottom, min_n=cfg.min_stimuli, what_a="top", what_b="bottom")
                cells.append(cell)
        best = best_system(mos, task, original_system=cfg.original_system)
        if best is None:
            continue
        others = [s for s in systems if s != best and (cfg.compare_with_original or s != cfg.original_system)]
        if task == "retrieval":
            per_query = (in_task.groupby(["system", "query", "aspect"], sort=False, observed=True)["median"]
                         .median())
        for other in others:
            for aspect in ASPECTS:
                cell = _cell(task, "best_vs_other", best, other, aspect)
                if task == "generation":
                    _mwu_cell(cell, pooled.get((task, best, aspect), empty),
                              pooled.get((task, other, aspect), empty), min_n=cfg.min_stimuli,
                              what_a=f"{best!r} stimuli", what_b=f"{other!r} stimuli")
                else:
                    _wilcoxon_cell(cell, per_query, best, other, aspect, min_pairs=cfg.min_pairs)
                cells.append(cell)
    table = pd.DataFrame(cells, columns=list(SIGNIFICANCE_COLUMNS))
    if table.empty:
        return table
    if holm:
        for _, index in table.groupby(["task", "comparison"], sort=False).groups.items():
            table.loc[index, "p_holm"] = stats.holm(table.loc[index, "p"].to_numpy(dtype=float))
    chosen = table["p_holm"] if holm else table["p"]
    table["level"] = [stats.significance_level(p) for p in chosen.to_numpy(dtype=float)]
    table["n_a"] = table["n_a"].astype(int)
    table["n_b"] = table["n_b"].astype(int)
    return _ordered(table, original_system=cfg.original_system,
                    by=["task", "comparison", "system_a", "system_b", "aspect"])


def _wilcoxon_cell(cell: dict[str, object], per_query: pd.Series, best: str, other: str,
                   aspect: str, *, min_pairs: int) -> None:
    def series(system: str) -> pd.Series:
        try:
            return per_query.xs((system, aspect), level=("system", "aspect"))
        except KeyError:
            return pd.Series(dtype=float)

    a, b = series(best), series(other)
    paired = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    cell.update(test="wilcoxon", n_a=len(paired), n_b=len(paired),
                method="exact if no ties/zeros and n <= 50, else asymptotic (no continuity correction)")
    if len(paired) < min_pairs:
        cell["reason"] = (
            f"too few paired queries: {len(paired)} queries rated for both {best!r} ({len(a)}) and "
            f"{other!r} ({len(b)}); Wilcoxon needs at least {min_pairs}."
        )
        return
    try:
        _fill(cell, stats.wilcoxon_signed_rank(paired["a"].to_numpy(), paired["b"].to_numpy()))
    except StatsError as exc:
        cell["reason"] = str(exc)
