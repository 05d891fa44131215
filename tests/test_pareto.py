"""Non-dominated sorting, crowding distance, frontiers and hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretolm.core import pareto

points_st = st.integers(min_value=1, max_value=3).flatmap(
    lambda k: st.lists(st.tuples(*[st.integers(0, 6)] * k), min_size=0, max_size=25)
)


def brute_dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=False)) and any(x < y for x, y in zip(a, b, strict=False))


@settings(max_examples=150, deadline=None)
@given(points_st)
def test_sort_matches_brute_force_peeling(pts):
    p = np.array(pts, dtype=float).reshape(len(pts), len(pts[0]) if pts else 1)
    fronts = pareto.non_dominated_sort(p)
    remaining = set(range(len(pts)))
    for front in fronts:
        expected = {i for i in remaining if not any(brute_dominates(pts[j], pts[i]) for j in remaining)}
        assert set(front.tolist()) == expected
        remaining -= expected
    assert not remaining
    assert sum(len(f) for f in fronts) == len(pts)


def test_pareto_front_senses_and_duplicates():
    df = pd.DataFrame(
        {
            "arch_id": list("abcdef"),
            "decoder_params": [10, 20, 20, 5, 30, 30],  # maximise
            "latency_ms": [1.0, 2.0, 3.0, 1.0, 4.0, 4.0],  # minimise
        }
    )
    front = pareto.pareto_front(df, {"decoder_params": "max", "latency_ms": "min"})
    # c is dominated by b (same params, slower); d by a; e and f are equal: both stay.
    assert front["arch_id"].tolist() == ["a", "b", "e", "f"]
    # With everything minimised, the smallest model wins alone... along with a (equal latency).
    front_min = pareto.pareto_front(df, ["decoder_params", "latency_ms"])
    assert front_min["arch_id"].tolist() == ["d"]


def test_bad_objectives_raise_naming_field():
    df = pd.DataFrame({"x": [1.0], "y": [np.nan]})
    with pytest.raises(ValueError, match="objectives.x: sense"):
        pareto.pareto_front(df, {"x": "up"})
    with pytest.raises(ValueError, match="columns \\['z'\\]"):
        pareto.pareto_front(df, {"z": "min"})
    with pytest.raises(ValueError, match="objectives.y: column has missing"):
        pareto.pareto_front(df, {"y": "min"})


def test_crowding_distance_boundaries_and_interior():
    p = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    cd = pareto.crowding_distance(p)
    assert np.isinf(cd[0]) and np.isinf(cd[3])
    # interior: (3-0)/4 + (4-1)/4 = 1.5 for point 1; (4-1)/4 + (3-0)/4 = 1.5 for point 2
    assert cd[1] == pytest.approx(1.5) and cd[2] == pytest.approx(1.5)


def test_select_prefers_front_then_crowding():
    df = pd.DataFrame({"f1": [0, 1, 2, 3, 4, 0.5, 5], "f2": [4, 3, 2, 1, 0, 4.5, 5]})
    picked = pareto.select(df, ["f1", "f2"], 3)
    # front 0 is rows 0-4; boundaries 0 and 4 have infinite crowding, then the most isolated.
    assert {0, 4} <= set(picked.index)
    assert len(picked) == 3 and set(picked.index) <= {0, 1, 2, 3, 4}
    assert set(pareto.select(df, ["f1", "f2"], 6).index) == {0, 1, 2, 3, 4, 5}


def grid_volume(pts, ref):
    """Count unit cells of the integer grid [0, ref) dominated by some point."""
    cells = itertools.product(*[range(int(r)) for r in ref])
    return sum(any(all(c >= x for c, x in zip(cell, pt, strict=False)) for pt in pts) for cell in cells)


@settings(max_examples=80, deadline=None)
@given(points_st)
def test_hypervolume_equals_grid_count(pts):
    k = len(pts[0]) if pts else 2
    ref = [7] * k
    hv = pareto.hypervolume(np.array(pts, dtype=float).reshape(len(pts), k), ref)
    assert hv == pytest.approx(grid_volume(pts, ref))


def test_hypervolume_known_values_and_reference():
    assert pareto.hypervolume(np.array([[1.0, 1.0]]), [3, 3]) == pytest.approx(4.0)
    assert pareto.hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3, 3]) == pytest.approx(3.0)
    assert pareto.hypervolume(np.array([[0.0, 0.0, 0.0]]), [1, 2, 3]) == pytest.approx(6.0)
    # points beyond the reference count for nothing
    assert pareto.hypervolume(np.array([[5.0, 0.0]]), [3, 3]) == 0.0
    with pytest.raises(ValueError, match="reference"):
        pareto.hypervolume(np.array([[1.0, 1.0]]), [3, 3, 3])
    df = pd.DataFrame({"params": [10.0, 20.0], "lat": [1.0, 2.0]})
    # maximise params from reference 0, minimise latency to reference 3: 10*2 + 10*1 = 30
    assert pareto.hypervolume_of(df, {"params": "max", "lat": "min"}, {"params": 0, "lat": 3}) == 30.0
