"""paretolm's GPT-2 trainer against stock Hugging Face GPT2LMHeadModel (the CI guard of
``benchmarks/bench_parity.py`` on one small shape).

* Same initial weights (paretolm's copied into GPT2LMHeadModel): the same logits and loss on the
  first batch, and the same loss at every step of a short training run (``training.train`` against
  the benchmark's HF loop: batches, optimizer groups, LR schedule and clipping all have to match).
  The tolerance is tight enough to tell the GELU variants apart, which is checked too.
* Independent initialisations: the same init distribution per parameter, and mean validation loss
  over seeds within the seed spread (``|delta mean| <= max(sd)``, as the benchmark decides).
"""

from __future__ import annotations

import importlib.util
import statistics
from dataclasses import replace

import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT, needs_data

from paretolm.training.trainer import build_trainable, train

pytestmark = needs_data("corpora/kjv/kjv_verses.txt")

_spec = importlib.util.spec_from_file_location("bench_parity", REPO_ROOT / "benchmarks" / "bench_parity.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SEQ, BATCH = 32, 8


@pytest.fixture(scope="module")
def kjv(tmp_path_factory):
    dc = bench.kjv_data(tmp_path_factory.mktemp("data"), root=REPO_ROOT)
    return dc.split("train"), dc.split("validation"), dc.vocab_size()


def _pair(spec, cfg):
    """paretolm's initial model as ``train`` builds it, and a GPT2LMHeadModel holding its weights."""
    torch.manual_seed(cfg.seed)
    ours = build_trainable(spec, cfg)
    theirs = bench.hf_gpt2(spec, cfg.seed)
    bench.copy_weights(ours, theirs)
    return ours.eval(), theirs.eval()


def test_identical_weights_give_identical_logits_and_training(kjv, tmp_path):
    train_split, _, vocab = kjv
    torch.set_num_threads(1)
    spec = bench.gpt2_spec(2, 64, 2, 128, vocab, SEQ)
    cfg = bench.train_config(8, BATCH, SEQ, seed=0)
    cfg = replace(cfg, log_every=1, warmup_steps=2)
    ours, theirs = _pair(spec, cfg)
    x = bench.train_batch(train_split.ids, 0, BATCH, SEQ, 0)
    with torch.no_grad():
        a, b = ours(input_ids=x, labels=x), theirs(input_ids=x, labels=x)
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-5)
    assert float(b.loss) == pytest.approx(float(a.loss), abs=1e-6)

    # the check sees a GELU variant: exact erf GELU in place of the tanh approximation
    exact = bench.hf_gpt2(spec, 0)
    exact.config.activation_function = "gelu"
    for block in exact.transformer.h:
        block.mlp.act = torch.nn.GELU()
    bench.copy_weights(ours, exact)
    with torch.no_grad():
        assert (exact.eval()(input_ids=x).logits - a.logits).abs().max() > 1e-5

    # whole steps: paretolm's own trainer from the same initial weights against the HF loop
    summary = train(spec, train_split.ids, cfg, tmp_path / "ours", progress=False)
    theirs_losses = bench.train_hf(theirs, train_split.ids, cfg)
    ours_losses = pd.read_parquet(tmp_path / "ours" / "train_log.parquet")["loss"].tolist()
    assert summary["steps"] == len(ours_losses) == len(theirs_losses) == cfg.steps
    assert ours_losses[0] == pytest.approx(float(a.loss), abs=1e-6)
    assert theirs_losses == pytest.approx(ours_losses, abs=1e-4)
    assert ours_losses[-1] < ours_losses[0] - 0.1  # it trained, so the steps compared mattered


def test_init_distributions_match(kjv):
    """GPT-2 init in both: per-tensor std (0.02, residual projections / sqrt(2 n_layer)) agrees."""
    _, _, vocab = kjv
    spec = bench.gpt2_spec(5, 64, 2, 128, vocab, SEQ)
    cfg = bench.train_config(1, BATCH, SEQ, seed=0)
    torch.manual_seed(0)
    ours = build_trainable(spec, cfg)
    theirs = bench.hf_gpt2(spec, 1)
    copied = bench.hf_gpt2(spec, 1)
    bench.copy_weights(ours, copied)  # paretolm's tensors in HF's layout, to compare name by name
    fresh, mine = dict(theirs.named_parameters()), dict(copied.named_parameters())
    assert fresh.keys() == mine.keys()
    for name, p in fresh.items():
        if p.dim() >= 2:
            assert float(p.detach().std()) == pytest.approx(float(mine[name].detach().std()), rel=0.1), name
        else:
            assert torch.equal(p, mine[name]), name  # biases 0, LayerNorm 1 / 0


def test_mean_validation_loss_within_seed_spread(kjv):
    train_split, valid, vocab = kjv
    spec = bench.gpt2_spec(1, 64, 2, 128, vocab, SEQ)
    runs = [
        bench.run_pair(spec, bench.train_config(60, BATCH, SEQ, seed), train_split.ids, valid, 4096)
        for seed in (0, 1, 2)
    ]
    ours = [r["paretolm"]["val_loss"] for r in runs]
    theirs = [r["hf_gpt2"]["val_loss"] for r in runs]
    v = bench.spread_verdict(ours, theirs)
    assert max(ours + theirs) < 7.5  # well below ln(4096) = 8.32: both learned
    assert statistics.stdev(ours) > 0 and statistics.stdev(theirs) > 0  # seeds did differ
    assert v["within_spread"], v
