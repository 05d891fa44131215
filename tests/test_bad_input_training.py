"""A damaged training checkpoint does not block the job: the previous checkpoint, or a fresh
start, gives the same final model as an uninterrupted run; trained folders get normal permissions."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest

import paretolm.training.trainer as training
from paretolm.core.arch import ArchSpec
from paretolm.training.recipe import TrainConfig
from paretolm.training.trainer import train

SPEC = ArchSpec("gpt2", n_layer=1, d_model=32, n_head=2, d_inner=32, vocab_size=64, max_seq_len=16)
IDS = np.random.default_rng(0).integers(0, 64, 20_000)
CFG = TrainConfig(
    optimizer="adamw", steps=6, batch_size=2, seq_len=16, warmup_steps=1, checkpoint_every=2, log_every=1, threads=1
)


def _interrupted(out, monkeypatch, at_step: int) -> None:
    """Train until the batch of ``at_step`` is asked for, then fail as a kill would."""
    real = training.train_batch

    def batch(ids, step, *args):
        if step == at_step:
            raise KeyboardInterrupt
        return real(ids, step, *args)

    monkeypatch.setattr(training, "train_batch", batch)
    with pytest.raises(KeyboardInterrupt):
        train(SPEC, IDS, CFG, out, progress=False)
    monkeypatch.setattr(training, "train_batch", real)


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: (c / "state.json").write_text("{truncated"),
        lambda c: (c / "model.safetensors").write_bytes(b"\0" * 10),
        lambda c: (c / "optimizer.pt").unlink(),
    ],
    ids=["state", "weights", "missing-optimizer"],
)
def test_damaged_checkpoint_falls_back_and_ends_the_same(tmp_path, monkeypatch, caplog, damage) -> None:
    reference = train(SPEC, IDS, CFG, tmp_path / "reference", progress=False)
    out = tmp_path / "run"
    _interrupted(out, monkeypatch, at_step=5)  # checkpoints at steps 2 and 4
    damage(out / "checkpoint")
    with caplog.at_level(logging.WARNING, logger="paretolm"):
        summary = train(SPEC, IDS, CFG, out, progress=False)
    assert "cannot be loaded" in caplog.text and str(out / "checkpoint") in caplog.text
    assert summary["resumed_from"] == 0 and summary["final_loss"] == reference["final_loss"]


def test_previous_checkpoint_is_used_when_the_newest_is_damaged(tmp_path, monkeypatch) -> None:
    reference = train(SPEC, IDS, CFG, tmp_path / "reference", progress=False)
    out = tmp_path / "run"
    _interrupted(out, monkeypatch, at_step=3)  # a checkpoint at step 2
    os.replace(out / "checkpoint", out / "checkpoint.old")  # as if killed while writing the next one
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "state.json").write_text("{")
    summary = train(SPEC, IDS, CFG, out, progress=False)
    assert summary["resumed_from"] == 2 and summary["final_loss"] == reference["final_loss"]


def test_trained_model_folder_has_normal_permissions(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        train(SPEC, IDS, CFG, tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    folder = tmp_path / "run" / "model"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
