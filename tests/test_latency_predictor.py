"""Latency predictor: features, fit/predict, safetensors round trip, HAT held-out accuracy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, needs_data

from paretolm.cli import main
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, read_table, write_table
from paretolm.core.counting import count
from paretolm.core.spaces import load_space
from paretolm.hardware.predictors.mlp import (
    LatencyPredictor,
    evaluate,
    fit_profile,
    holdout,
    layer_genes,
    read_hat,
    spec_features,
    split,
)

HAT = DATA / "ground-truth" / "hat-latency"
needs_hat = needs_data("ground-truth/hat-latency")


def test_features_of_merino_expand_blocks_and_pad():
    spec = ArchSpec.from_dict(
        {
            "backbone": "merino",
            "blocks": [
                {"d_model": 128, "ffn_ratio": 2.0, "n_layer": 2},
                {"d_model": 256, "ffn_ratio": 1.5, "n_layer": 1},
            ],
        }
    )
    widths, inner, heads = layer_genes(spec)
    assert widths == [128, 128, 256] and inner == [256, 256, 384] and heads == [2, 2, 4]
    f = spec_features(spec, seq_len=64, positions=5)
    c = count(spec, 64)
    assert f["flops"] == c.flops and f["decoder_params"] == c.decoder_params and f["n_layers"] == 3
    assert [f[f"d_inner_{i}"] for i in range(5)] == [256, 256, 384, 0, 0]


def test_evaluate_known_values():
    m = evaluate([10.0, 20.0, 40.0], [11.0, 18.0, 40.0])
    assert m["rmse_ms"] == pytest.approx(math.sqrt((1 + 4 + 0) / 3))
    assert m["mape_pct"] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="y_pred"):
        evaluate([1.0, 2.0], [1.0])


def test_split_is_seeded_and_disjoint():
    a_tr, a_te = split(100, 0.2, seed=3)
    b_tr, b_te = split(100, 0.2, seed=3)
    assert len(a_te) == 20 and not set(a_tr) & set(a_te) and set(a_tr) | set(a_te) == set(range(100))
    assert (a_te == b_te).all() and (split(100, 0.2, seed=4)[1] != a_te).any()
    with pytest.raises(ValueError, match="test_fraction"):
        split(10, 1.5)


def _synthetic_profile(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Specs of the SpeedLimit space with a latency that is a known function of their shape."""
    specs = load_space("config/spaces/speedlimit_bert.yaml").sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    lat = [0.5 + 2e-8 * count(s, 128).flops * (1 + 0.15 * s.n_layer) * rng.uniform(0.97, 1.03) for s in specs]
    return pd.DataFrame(
        {"arch_id": [s.arch_id for s in specs], "spec": [s.to_json() for s in specs], "latency_ms": lat}
    )


def test_fit_predict_is_deterministic_and_round_trips_through_safetensors(tmp_path):
    df = _synthetic_profile()
    a = fit_profile(df, seq_len=128, seed=1)
    b = fit_profile(df, seq_len=128, seed=1)
    specs = [ArchSpec.from_json(s) for s in df["spec"]]
    pa, pb = a.predict_specs(specs), b.predict_specs(specs)
    np.testing.assert_array_equal(pa, pb)
    assert evaluate(df["latency_ms"], pa)["mape_pct"] < 10
    path = a.save(tmp_path / "p.safetensors")
    assert b"paretolm-latency-mlp" in path.read_bytes()[:4096]
    loaded = LatencyPredictor.load(path)
    np.testing.assert_allclose(loaded.predict_specs(specs), pa, rtol=1e-12)
    assert loaded.meta["seq_len"] == 128 and loaded.features == a.features


def test_fit_rejects_bad_latencies_and_unfitted_use():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="latency_ms"):
        LatencyPredictor().fit(X, [1.0, -2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="predictor"):
        LatencyPredictor().predict(X)
    with pytest.raises(ValueError, match="features"):
        LatencyPredictor().fit(X, [1.0, 2.0, 3.0, 4.0]).predict(pd.DataFrame({"b": [1.0]}))


@needs_hat
@pytest.mark.parametrize("name", ["wmt14ende_cpu_xeon", "wmt14enfr_gpu_titanxp"])
def test_predictor_beats_params_only_on_hat_heldout(name):
    X, y = read_hat(HAT / f"{name}_all.csv")
    assert len(y) == 2000 and (y > 0).all()
    m = holdout(X, y, test_fraction=0.2, seed=0)
    assert m["test_rows"] == 400
    p, b = m["predictor"], m["params_only"]
    assert p["rmse_ms"] < 0.6 * b["rmse_ms"] and p["mape_pct"] < b["mape_pct"]
    assert p["spearman"] > 0.95 > b["spearman"]


@needs_hat
def test_cli_evaluate_hat_and_fit_predictor(tmp_path, capsys):
    out = tmp_path / "hat.parquet"
    assert main(["speedlimit", "evaluate-hat", str(HAT / "wmt14ende_gpu_titanxp_all.csv"), "--out", str(out)]) == 0
    t = read_table(out)
    assert set(t["model"]) == {"predictor", "params_only"} and (t["n"] == 400).all()
    assert "predictor" in capsys.readouterr().out
    profile = tmp_path / "profile.parquet"
    write_table(_synthetic_profile(40), profile, provenance("profile", {"profile": {"seq_len": 128}}))
    pred_path = tmp_path / "pred.safetensors"
    assert (
        main(["speedlimit", "fit-predictor", "--profile", str(profile), "--out", str(pred_path), "--folds", "4"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["seq_len"] == 128 and report["metrics"]["rows"] == 40
    assert LatencyPredictor.load(pred_path).meta["heldout"]["folds"] == 4
    assert (
        main(["speedlimit", "fit-predictor", "--profile", str(tmp_path / "none.parquet"), "--out", str(pred_path)]) == 2
    )
