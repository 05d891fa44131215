"""Training: schedules, optimizers, outputs, and resume after SIGKILL reaching the same loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import DATA, data_path, needs_data

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import read_provenance, read_table
from paretolm.training.loop import make_optimizer
from paretolm.training.recipe import PRESETS, TrainConfig, lr_factor
from paretolm.training.trainer import load_model, train

SHAKES = DATA / "corpora/tinyshakespeare/input.txt"
pytestmark = needs_data(SHAKES)
SPEC = ArchSpec(backbone="gpt2", n_layer=2, d_model=32, n_head=2, d_inner=64, vocab_size=256, max_seq_len=64)


def _ids() -> np.ndarray:
    """Byte-level ids of Tiny Shakespeare (vocabulary 256): real text, no tokenizer needed."""
    return np.frombuffer(SHAKES.read_bytes()[:200_000], dtype=np.uint8)


def test_lr_schedules():
    cfg = TrainConfig(steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    lin = TrainConfig(steps=110, warmup_steps=10, schedule="linear")
    assert lr_factor(35, lin) == pytest.approx(0.75)
    assert lr_factor(50, TrainConfig(steps=110, warmup_steps=0, schedule="constant")) == 1.0


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match=r"train\.optimizer"):
        TrainConfig.from_dict({"optimizer": "sgd"})
    with pytest.raises(ValueError, match=r"train\.stepz"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match=r"train\.preset"):
        TrainConfig.from_dict({"preset": "gpt5"})
    with pytest.raises(ValueError, match=r"train\.dropout"):
        TrainConfig.from_dict({"dropout": 1.5})
    cfg = TrainConfig.from_dict({"preset": "lts-wt103", "steps": 5})
    assert cfg.optimizer == "lamb" and cfg.seq_len == 192 and cfg.steps == 5
    assert PRESETS["lts-lm1b"].seq_len == 32


@pytest.mark.parametrize("preset, logged", [("lts-wt103", "random_TransXL_wt103"), ("lts-lm1b", "random_TransXL_lm1b")])
def test_lts_presets_match_the_settings_lts_logged(preset, logged):
    import yaml

    path = data_path("ground-truth", "lts-archai", logged, "config_0", "j0", "model_config.yaml")
    lts = yaml.safe_load(path.read_text())
    cfg = PRESETS[preset]
    assert cfg.optimizer == {"jitlamb": "lamb", "lamb": "lamb", "adam": "adam"}[lts["optim"]]
    assert cfg.lr == pytest.approx(lts["lr"]) and cfg.min_lr_ratio == pytest.approx(lts["eta_min"] / lts["lr"])
    assert (cfg.steps, cfg.batch_size, cfg.seq_len) == (lts["max_step"], lts["batch_size"], lts["tgt_len"])
    assert (cfg.warmup_steps, cfg.schedule, cfg.grad_clip) == (lts["warmup_step"], lts["scheduler"], lts["clip"])
    assert (cfg.dropout, cfg.attn_dropout, cfg.weight_decay) == (lts["dropout"], lts["dropatt"], lts["weight_decay"])


@pytest.mark.parametrize("name", ["lamb", "adam", "adamw"])
def test_optimizers_reduce_loss(tmp_path, name):
    cfg = TrainConfig(
        optimizer=name,
        lr=3e-3 if name != "lamb" else 1e-2,
        steps=40,
        batch_size=4,
        seq_len=32,
        warmup_steps=4,
        log_every=10,
        checkpoint_every=100,
    )
    out = train(SPEC, _ids(), cfg, tmp_path / name, progress=False)
    log = read_table(tmp_path / name / "train_log.parquet")
    assert list(log.step) == [10, 20, 30, 40]
    assert log.loss.iloc[-1] < log.loss.iloc[0] < np.log(256) + 0.5
    assert out["final_loss"] == pytest.approx(log.loss.iloc[-1])
    if name == "lamb":
        assert type(make_optimizer(torch.nn.Linear(2, 2), cfg)).__name__ == "Lamb"


def test_outputs_and_reload(tmp_path):
    cfg = TrainConfig(steps=20, batch_size=4, seq_len=32, log_every=5, dropout=0.1, checkpoint_every=10)
    train(SPEC, _ids(), cfg, tmp_path, progress=False)
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert any(f.endswith(".safetensors") for f in files)
    assert not (tmp_path / "checkpoint").exists()  # removed once the model is saved
    log = read_table(tmp_path / "train_log.parquet")
    assert list(log.columns) == ["step", "loss", "lr", "tokens_per_s"] and (log.tokens_per_s > 0).all()
    assert read_provenance(tmp_path / "train_log.parquet")["stage"] == "train"
    model = load_model(tmp_path / "model")
    x = torch.from_numpy(_ids()[:32].astype(np.int64))[None]
    out = model(x)
    logits = out.logits if hasattr(out, "logits") else out[0]
    assert logits.shape[:2] == (1, 32) and not model.training
    with pytest.raises(ValueError, match="vocab_size"):
        train(SPEC.with_(vocab_size=100), _ids(), cfg, tmp_path / "bad", progress=False)


_CHILD = """
import sys, numpy as np
from pathlib import Path
from paretolm.core.arch import ArchSpec
from paretolm.training.recipe import TrainConfig
from paretolm.training.trainer import train
spec = ArchSpec.from_json(sys.argv[1])
ids = np.frombuffer(Path(sys.argv[2]).read_bytes()[:200_000], dtype=np.uint8)
cfg = TrainConfig.from_dict(__import__("json").loads(sys.argv[3]))
print(__import__("json").dumps(train(spec, ids, cfg, sys.argv[4], progress=False)))
"""


@pytest.mark.slow
def test_sigkill_resume_reaches_same_final_loss(tmp_path):
    cfg = {
        "steps": 120,
        "batch_size": 4,
        "seq_len": 32,
        "log_every": 5,
        "checkpoint_every": 20,
        "dropout": 0.1,
        "warmup_steps": 10,
        "seed": 3,
    }
    args = [SPEC.to_json(), str(SHAKES), json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ref = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, str(tmp_path / "ref")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ref_summary = json.loads(ref.stdout.strip().splitlines()[-1])

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args, str(run_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = run_dir / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.is_file() and json.loads(state.read_text())["step"] >= 40:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "train_log.parquet").exists()  # it really died before finishing

    res = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, str(run_dir)], env=env, capture_output=True, text=True, check=True
    )
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] >= 40
    assert summary["final_loss"] == ref_summary["final_loss"]
    a, b = read_table(tmp_path / "ref" / "train_log.parquet"), read_table(run_dir / "train_log.parquet")
    assert a.step.tolist() == b.step.tolist() and a.loss.tolist() == b.loss.tolist()
