"""Pure study designs, page choice and the ratings table (no database)."""

import pytest

from listening.assignment import AssignmentError, choose_page, free_slot, step_seed
from listening.design import (
    DesignError,
    Query,
    choose_candidates,
    choose_queries,
    generation_design,
    retrieval_design,
)
from listening.export import COLUMNS, ExportError, RatingRow, ratings_frame


def _scores(values):
    return [(cid, v) for cid, v in values.items()]


def test_generation_pairs_each_systems_top_and_bottom_with_its_original():
    scores = {"a": _scores({1: 0.9, 2: 0.8, 3: 0.5, 4: 0.1}), "b": _scores({1: 0.2, 2: 0.95, 3: 0.7, 4: 0.6})}
    original_of = {1: 101, 2: 102, 3: 103, 4: 104}
    plan = generation_design(scores=scores, original_of=original_of, top_n=1, bottom_n=1, seed=3)
    # a: top 1, bottom 4; b: top 2, bottom 1 -> candidate 1 is shared (a top, b bottom)
    by_candidate = {s.candidate_id: s for s in plan.stimuli if s.candidate_id < 100}
    assert sorted(by_candidate) == [1, 2, 4]
    assert {(lab.system, lab.group) for lab in by_candidate[1].labels} == {("a", "top"), ("b", "bottom")}
    assert len(plan.pages) == 3
    for page in plan.pages:
        pair = {plan.stimulus(page.left).candidate_id, plan.stimulus(page.right).candidate_id}
        cand = min(pair)
        assert pair == {cand, original_of[cand]}
    originals = [s for s in plan.stimuli if s.candidate_id > 100]
    assert all(s.labels[0].system == "original" for s in originals) and len(originals) == 3


def test_generation_left_right_order_is_random_but_seeded():
    scores = {"a": _scores({i: i / 100 for i in range(1, 41)})}
    original_of = {i: 1000 + i for i in range(1, 41)}
    plan = generation_design(scores=scores, original_of=original_of, top_n=10, bottom_n=10, seed=5)
    again = generation_design(scores=scores, original_of=original_of, top_n=10, bottom_n=10, seed=5)
    lefts = [plan.stimulus(p.left).candidate_id > 1000 for p in plan.pages]
    assert lefts == [again.stimulus(p.left).candidate_id > 1000 for p in again.pages]
    assert 3 <= sum(lefts) <= 17  # both orders occur
    other = generation_design(scores=scores, original_of=original_of, top_n=10, bottom_n=10, seed=6)
    assert lefts != [other.stimulus(p.left).candidate_id > 1000 for p in other.pages]


def test_generation_refuses_too_few_candidates_and_missing_originals():
    with pytest.raises(DesignError, match="need 4"):
        generation_design(scores={"a": _scores({1: 0.5, 2: 0.4, 3: 0.1})}, original_of={1: 9, 2: 9, 3: 9},
                          top_n=2, bottom_n=2, seed=0)
    with pytest.raises(DesignError, match="no original"):
        generation_design(scores={"a": _scores({1: 0.5, 2: 0.4})}, original_of={1: 9}, top_n=1, bottom_n=1, seed=0)
    with pytest.raises(DesignError, match="seed"):
        generation_design(scores={"a": _scores({1: 0.5})}, original_of={1: 9}, top_n=1, bottom_n=0, seed=-1)
    with pytest.raises(DesignError, match="non-finite"):
        generation_design(scores={"a": [(1, float("nan"))]}, original_of={1: 9}, top_n=1, bottom_n=0, seed=0)


def test_retrieval_makes_s_plus_one_stimuli_per_query_in_pairs():
    systems = {f"s{i}": _scores({10 * i + 1: 0.9, 10 * i + 2: 0.1}) for i in range(5)}
    plan = retrieval_design(queries=[Query(0, 999, systems)], seed=1)
    assert len(plan.stimuli) == 6 and len(plan.pages) == 3  # the paper: 6 stimuli -> 3 pages
    shown = sorted(k for p in plan.pages for k in (p.left, p.right))
    assert shown == list(range(6))
    assert {s.candidate_id for s in plan.stimuli} == {999, 1, 11, 21, 31, 41}
    assert all(s.query == 0 for s in plan.stimuli)


def test_retrieval_shares_a_top1_picked_by_two_systems_and_pads_with_a_filler():
    systems = {"a": _scores({5: 0.9, 6: 0.2}), "b": _scores({5: 0.8, 7: 0.3}), "c": _scores({8: 0.7})}
    plan = retrieval_design(queries=[Query(0, 100, systems)], seed=2)
    real = [s for s in plan.stimuli if not s.filler]
    assert sorted(s.candidate_id for s in real) == [5, 8, 100]
    shared = next(s for s in real if s.candidate_id == 5)
    assert {lab.system for lab in shared.labels} == {"a", "b"}
    fillers = [s for s in plan.stimuli if s.filler]
    assert len(fillers) == 1 and len(plan.pages) == 2
    assert fillers[0].candidate_id in {5, 8, 100}
    for page in plan.pages:  # never the same clip twice on one page
        assert plan.stimulus(page.left).candidate_id != plan.stimulus(page.right).candidate_id


def test_query_and_candidate_draws_are_seeded_subsets():
    ids = list(range(50))
    assert choose_queries(ids, n_queries=10, seed=4) == choose_queries(ids, n_queries=10, seed=4)
    assert len(set(choose_queries(ids, n_queries=10, seed=4))) == 10
    assert choose_candidates([3, 1, 2], n_candidates=180, seed=0) == [1, 2, 3]


def test_choose_page_takes_least_loaded_unseen_open_pages():
    loads = {1: 3, 2: 1, 3: 0, 4: 0, 5: 2}
    picks = {choose_page(loads=loads, seen={}, ratings_per_page=3, seed=s) for s in range(40)}
    assert picks == {3, 4}
    assert choose_page(loads=loads, seen={3, 4}, ratings_per_page=3, seed=0) == 2
    assert choose_page(loads={1: 3, 2: 1}, seen={2}, ratings_per_page=3, seed=0) is None
    assert step_seed(5, 1) == step_seed(5, 1) != step_seed(5, 2)
    assert free_slot([0, 2], ratings_per_page=3) == 1 and free_slot([0, 1, 2], ratings_per_page=3) is None
    with pytest.raises(AssignmentError):
        choose_page(loads={}, seen=(), ratings_per_page=0, seed=0)


def test_ratings_frame_has_the_analysis_columns_and_refuses_bad_scores():
    row = {"task": "generation", "page": 0, "participant": "1", "stimulus": "3/amu", "system": "amu", "group": "top",
           "query": "", "aspect": "overall", "score": 4, "heard_before": "no", "seconds": 12.5,
           "listens_daily": "yes", "produces_music": "no"}
    frame = ratings_frame([RatingRow(**row), RatingRow(**{**row, "aspect": "harmony", "score": 2})])
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["aspect"]) == ["overall", "harmony"]  # aspect order of the analysis
    with pytest.raises(ExportError, match="outside 1-5"):
        ratings_frame([RatingRow(**{**row, "score": 6})])
