"""Rank correlations, top-k overlap, d_avg (LTS Eq. 2) and hypervolume on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from paretolm.core.pareto import hypervolume, non_dominated
from paretolm.validation import correlation as C


def test_spearman_and_kendall_known_values():
    assert C.rank_correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx((0.8, 4 / 6))
    assert C.rank_correlation([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx((-1.0, -1.0))
    src, tau = C.rank_correlation([1, 1, 1], [1, 2, 3])
    assert np.isnan(src) and np.isnan(tau)
    # NaN pairs are dropped
    assert C.rank_correlation([1, 2, np.nan, 3], [3, 2, 9, 1]) == pytest.approx((-1.0, -1.0))


def test_top_k_overlap():
    assert C.top_k_overlap([4, 3, 2, 1], [1, 2, 3, 4], 2) == 1.0
    assert C.top_k_overlap([4, 3, 2, 1], [4, 3, 2, 1], 2) == 0.0
    assert C.top_k_overlap([4, 3, 2, 1], [1, 3, 2, 4], 2) == 0.5
    assert C.top_k_overlap([4, 3, 2, 1], [0.9, 0.8, 0.1, 0.2], 2, lower_is_better=False) == 1.0
    with pytest.raises(ValueError, match="top_k"):
        C.top_k_overlap([1, 2], [1, 2], 3)


def test_correlation_table_sign_and_bins():
    rng = np.random.default_rng(0)
    params = np.arange(1, 13, dtype=float) * 1e6
    df = pd.DataFrame(
        {
            "decoder_params": params,
            "noise": rng.permutation(12).astype(float),
            "valid_ppl": 100 - params / 1e6,  # more params -> lower ppl
            "accuracy": params / 1e8,
        }
    )
    t = C.correlation_table(df, ["decoder_params", "noise"], {"valid_ppl": True, "accuracy": False}, n_bins=3)
    row = t[(t.target == "valid_ppl") & (t.bin == "all") & (t.proxy == "decoder_params")].iloc[0]
    assert row.src == pytest.approx(-1.0) and row.kendall == pytest.approx(-1.0) and row.n == 12
    assert row.top10 == 1.0 and row.top50 == 1.0
    acc = t[(t.target == "accuracy") & (t.bin == "all") & (t.proxy == "decoder_params")].iloc[0]
    assert acc.src == pytest.approx(1.0)
    bins = t[(t.target == "valid_ppl") & (t.proxy == "decoder_params") & (t.bin != "all")]
    assert list(bins.n) == [4, 4, 4]
    assert bins.bin.iloc[0] == "decoder_params[1e+06,4e+06]"
    assert (bins.src == -1.0).all()
    with pytest.raises(ValueError, match="valid_ppl"):
        C.correlation_table(df.drop(columns="valid_ppl"), ["noise"], {"valid_ppl": True})


def test_frontiers_use_the_one_pareto_implementation():
    pts = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [2.5, 2.5]])
    assert non_dominated(pts).tolist() == [True, True, True, False, False]
    assert hypervolume(pts, (4, 4)) == pytest.approx(6.0)
    assert hypervolume(np.array([[1.0, 1.0]]), (3, 2)) == pytest.approx(2.0)
    assert hypervolume(np.array([[5.0, 5.0]]), (4, 4)) == 0.0  # outside the reference box
    # duplicates of a frontier point all stay on it; a NaN row is never dominated
    assert non_dominated(np.array([[1, 1], [1, 1], [2, 2]])).tolist() == [True, True, False]
    assert non_dominated(np.array([[1, 1], [np.nan, 5], [2, 2]])).tolist() == [True, True, False]
    assert non_dominated(np.empty((0, 2))).tolist() == []
    assert not hasattr(C, "pareto_mask") and not hasattr(C, "hypervolume_2d")


def test_d_avg_known_answer():
    proxy = pd.DataFrame({"latency_ms": [1.0, 5.2], "valid_ppl": [11.0, 20.0]})
    gt = pd.DataFrame({"latency_ms": [0.9, 4.0, 6.0], "valid_ppl": [10.0, 18.0, 16.0]})
    # 1.0 -> 0.9 (10): 0.1 ; 5.2 -> 6.0 (16): 0.25
    assert C.d_avg(proxy, gt) == pytest.approx((0.1 + 0.25) / 2)
    assert C.d_avg(gt, gt) == 0.0
    with pytest.raises(ValueError, match="latency_ms"):
        C.d_avg(proxy.drop(columns="latency_ms"), gt)


def test_frontier_comparison_perfect_and_imperfect_proxy():
    df = pd.DataFrame(
        {
            "latency_ms": [1.0, 2.0, 3.0, 4.0, 2.4],
            "valid_ppl": [50.0, 40.0, 30.0, 20.0, 45.0],
            "decoder_params": [1.0, 2.0, 3.0, 4.0, 1.5],
        }
    )
    # the proxy's frontier (min latency, max params) is rows 0-3, the same as the true frontier
    out = C.frontier_comparison(df)
    assert out["d_avg"] == 0.0 and out["gt_mask"].tolist() == [True, True, True, True, False]
    assert out["hypervolume_gt"] == pytest.approx(out["hypervolume_proxy"])
    # row 4 now looks best by proxy at its latency: it joins the proxy frontier and row 2 leaves it
    df.loc[4, "decoder_params"] = 3.5
    out = C.frontier_comparison(df)
    assert out["proxy_mask"].tolist() == [True, True, False, True, True]
    # row 4 (2.4 ms, 45): closest gt point 2.0 ms (40) -> 0.125; the others match exactly
    assert out["d_avg"] == pytest.approx(0.125 / 4)
    assert out["hypervolume_proxy"] < out["hypervolume_gt"]
