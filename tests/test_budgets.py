"""Training budgets and the ground truth's own noise: the validation loss scored along a run,
resumed runs keeping what they scored, bootstrap intervals and the seed-to-seed spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, needs_data
from scipy import stats

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import read_table
from paretolm.training.recipe import TrainConfig
from paretolm.training.trainer import load_model, train
from paretolm.validation.correlation import bootstrap_ci, correlation_table, seed_noise
from paretolm.validation.evaluation import score_stream

SHAKES = DATA / "corpora/tinyshakespeare/input.txt"
SPEC = ArchSpec(backbone="gpt2", n_layer=1, d_model=32, n_head=2, d_inner=64, vocab_size=256, max_seq_len=64)


def _ids() -> tuple[np.ndarray, np.ndarray]:
    ids = np.frombuffer(SHAKES.read_bytes()[:120_000], dtype=np.uint8).astype(np.int64)
    return ids[:100_000], ids[100_000:]


def test_budget_fractions_are_checked_and_mapped_to_steps():
    cfg = TrainConfig.from_dict({"steps": 80, "budgets": [0.125, 0.5, 1]})
    assert cfg.budgets == (0.125, 0.5, 1.0) and cfg.budget_steps() == {10: 0.125, 40: 0.5, 80: 1.0}
    assert cfg.to_dict()["budgets"] == [0.125, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"train\.budgets\[1\]"):
        TrainConfig.from_dict({"budgets": [0.5, 1.5]})
    with pytest.raises(ValueError, match=r"train\.budgets: fractions must be increasing"):
        TrainConfig.from_dict({"budgets": [0.5, 0.25]})
    with pytest.raises(ValueError, match=r"train\.budget_tokens"):
        TrainConfig.from_dict({"budget_tokens": 1})


@needs_data(SHAKES)
def test_budgets_are_scored_on_the_same_windows_and_survive_a_resume(tmp_path, monkeypatch):
    train_ids, valid_ids = _ids()
    cfg = TrainConfig(
        steps=40,
        batch_size=4,
        seq_len=32,
        warmup_steps=4,
        log_every=5,
        checkpoint_every=10,
        budgets=(0.25, 0.5, 1.0),
        budget_tokens=2000,
        seed=1,
    )
    with pytest.raises(ValueError, match="eval_ids"):
        train(SPEC, train_ids, cfg, tmp_path / "none", progress=False)
    summary = train(SPEC, train_ids, cfg, tmp_path / "ref", eval_ids=valid_ids, progress=False)
    ref = read_table(tmp_path / "ref" / "budgets.parquet")
    assert ref.step.tolist() == [10, 20, 40] and ref.tokens.tolist() == [1280, 2560, 5120]
    assert ref.valid_loss.is_monotonic_decreasing and np.allclose(ref.valid_ppl, np.exp(ref.valid_loss))
    assert summary["budget_eval_seconds"] > 0
    # the last budget is the final model scored on the first budget_tokens validation tokens
    nll, n = score_stream(load_model(tmp_path / "ref" / "model"), valid_ids[:2001], 32)
    assert n == 2000 and ref.valid_loss.iloc[-1] == pytest.approx(nll / n, rel=1e-5)

    # a run that stops after its step-30 checkpoint, then resumes, scores the same budgets
    import paretolm.training.loop as training

    real = training.save_checkpoint

    def save_then_stop(folder, model, optimizer, scheduler, step, log, callbacks=None):
        real(folder, model, optimizer, scheduler, step, log, callbacks)
        if step == 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(SPEC, train_ids, cfg, tmp_path / "resumed", eval_ids=valid_ids, progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real)
    again = train(SPEC, train_ids, cfg, tmp_path / "resumed", eval_ids=valid_ids, progress=False)
    assert again["resumed_from"] == 30
    got = read_table(tmp_path / "resumed" / "budgets.parquet")
    pd.testing.assert_frame_equal(got.drop(columns="seconds"), ref.drop(columns="seconds"))


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_models():
    rng = np.random.default_rng(0)
    widths = []
    for n in (12, 200):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        ci = bootstrap_ci(x, y, samples=2000, seed=1)
        src, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
        assert ci["src_low"] < src < ci["src_high"] and ci["kendall_low"] < tau < ci["kendall_high"]
        widths.append(ci["src_high"] - ci["src_low"])
    assert widths[1] < widths[0] / 2
    assert bootstrap_ci(x, y, seed=3) == bootstrap_ci(x, y, seed=3)  # seeded
    assert np.isnan(bootstrap_ci([1, 2], [2, 1])["src_low"])


def test_correlation_table_carries_the_intervals():
    df = pd.DataFrame({"p": np.arange(10.0), "ppl": 100 - np.arange(10.0) ** 1.5})
    row = correlation_table(df, ["p"], {"ppl": True}, bin_column=None, bootstrap={"samples": 300}).iloc[0]
    # every resample ranks perfectly
    assert row.src == pytest.approx(-1) and row.src_low == pytest.approx(-1) == row.src_high


def test_seed_noise_separates_seed_spread_from_architecture_spread():
    rng = np.random.default_rng(0)
    archs = [f"a{i}" for i in range(16)]
    true = pd.Series(np.linspace(4.0, 5.5, 16), index=archs)
    repeats = pd.DataFrame(
        [{"arch_id": a, "loss": true[a] + rng.normal(0, 0.05)} for a in archs[::5] for _ in range(3)]
    )
    quiet = seed_noise(true, repeats, seed=0)
    assert quiet["n_repeated"] == 4 and 0.02 < quiet["seed_sd"] < 0.1
    assert quiet["arch_sd"] == pytest.approx(true.std(ddof=1)) and quiet["noise_ratio"] < 0.2
    assert quiet["src_retest"] > 0.95
    loud = seed_noise(true, repeats.assign(loss=repeats["loss"] + rng.normal(0, 1.0, len(repeats))), seed=0)
    assert loud["seed_sd"] > 5 * quiet["seed_sd"] and loud["src_retest"] < quiet["src_retest"] - 0.3
    none = seed_noise(true, repeats.iloc[:0])
    assert none["n_repeated"] == 0 and np.isnan(none["seed_sd"]) and np.isnan(none["src_retest"])
