"""End to end: the validation half of the Snakemake workflow on three tiny architectures."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DATA, needs_data, needs_executable

from paretolm.core.artifacts import read_provenance, read_table

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [needs_data(), needs_executable("snakemake")]


def _config() -> dict:
    return {
        "targets": ["cpu"],
        "profile": {"warmup": 1, "min_repeats": 10, "max_repeats": 10, "seq_len": 32},
        "proxies": {"names": ["decoder_params", "total_params", "flops"], "seq_len": 32},
        "datasets": {
            "shakespeare": {
                "files": str(DATA / "corpora/tinyshakespeare/input.txt"),
                "split": {"train": 0.9, "validation": 0.05, "test": 0.05},
            },
            "wikitext2": {
                "files": {
                    "validation": str(DATA / "corpora/wikitext-2/valid.txt"),
                    "test": str(DATA / "corpora/wikitext-2/test.txt"),
                }
            },
        },
        "tokenizers": {"sh_bpe": {"type": "bpe", "vocab_size": 300, "train_on": "shakespeare"}},
        "train": {
            "preset": "cpu-tiny",
            "dataset": "shakespeare",
            "tokenizer": "sh_bpe",
            "steps": 30,
            "batch_size": 4,
            "seq_len": 32,
            "checkpoint_every": 10,
            "log_every": 5,
            "budgets": [0.5, 1.0],
            "budget_tokens": 500,
        },
        "evaluate": {
            "seq_len": 32,
            "max_tokens": 2000,
            "splits": ["validation", "test"],
            "datasets": {"wikitext2": ["validation"]},
            "zero_shot": {
                "tasks": ["copa", "winogrande"],
                "limit": 4,
                "num_fewshot": [0],
                "data_dir": str(DATA / "zero-shot"),
            },
        },
        "validation": {
            "sources": [
                {
                    "kind": "baselines",
                    "n_layer": [1, 2, 3],
                    "base": {
                        "backbone": "gpt2",
                        "n_layer": 1,
                        "d_model": 32,
                        "n_head": 2,
                        "d_inner": 64,
                        "max_seq_len": 128,
                    },
                }
            ],
            "hardware": "cpu",
            "n_bins": 1,
            "repeats": {"archs": 2, "seeds": [1]},
            "bootstrap": {"samples": 200},
        },
    }


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "validation", "--configfile", "test-config.yaml", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_validation_workflow_end_to_end(tmp_path):
    for item in ("workflow", "config"):
        shutil.copytree(ROOT / item, tmp_path / item)
    (tmp_path / "test-config.yaml").write_text(yaml.safe_dump(_config()))
    run = _snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]

    runs = read_table(tmp_path / "results/validation/archs.parquet")
    archs = runs[runs.train_seed.isna()]
    assert len(archs) == 3 and set(archs.source) == {"baselines"} and (archs.run == archs.arch_id).all()
    # two repeats, of the smallest and the largest model, with seed 1
    repeats = runs[runs.train_seed.notna()]
    assert list(repeats.train_seed) == [1, 1] and set(repeats.arch_id) < set(archs.arch_id)
    assert list(repeats.run) == [f"{a}-seed1" for a in repeats.arch_id]
    for run in repeats.run:
        rep = read_table(tmp_path / f"results/train/{run}/train_log.parquet")
        first = read_table(tmp_path / f"results/train/{run.split('-')[0]}/train_log.parquet")
        assert rep.loss.iloc[0] != first.loss.iloc[0]  # another seed: another initialisation and batches
        assert read_provenance(tmp_path / f"results/train/{run}/train_log.parquet")["seed"] == 1
    for arch_id in archs.arch_id:
        budgets = read_table(tmp_path / f"results/train/{arch_id}/budgets.parquet")
        assert list(budgets.step) == [15, 30] and list(budgets.tokens) == [15 * 4 * 32, 30 * 4 * 32]
        assert budgets.valid_loss.iloc[1] < budgets.valid_loss.iloc[0]  # it learnt between the two
        log = read_table(tmp_path / f"results/train/{arch_id}/train_log.parquet")
        assert log.step.tolist() == [5, 10, 15, 20, 25, 30] and log.loss.iloc[-1] < log.loss.iloc[0]
        assert (tmp_path / f"results/train/{arch_id}/model/model.safetensors").stat().st_size > 0
        row = read_table(tmp_path / f"results/eval/{arch_id}.parquet").iloc[0]
        assert 1 < row.valid_ppl < 300 and 1 < row.test_ppl < 300  # better than uniform
        assert row.valid_word_ppl > row.valid_ppl  # fewer words than tokens
        assert math.isfinite(row.wikitext2_valid_ppl) and row.valid_tokens == 2000
        assert 0 <= row["0shot_copa_acc"] <= 1 and 0 <= row["0shot_mean_acc"] <= 1
        assert row.latency_ms > 0 and row.peak_memory_mb > 0
        assert read_provenance(tmp_path / f"results/eval/{arch_id}.parquet")["stage"] == "evaluate"

    ev = read_table(tmp_path / "results/eval.parquet")
    assert sorted(ev.run) == sorted(runs.run)
    assert ev.budget1_valid_loss.notna().all() and (ev.budget0_tokens == 15 * 4 * 32).all()
    corr = read_table(tmp_path / "results/correlation.parquet")
    row = corr[(corr.proxy == "decoder_params") & (corr.target == "valid_ppl") & (corr.bin == "all")]
    assert len(row) == 1 and row.n.iloc[0] == 3 and -1 <= row.src.iloc[0] <= 1
    assert row.src_low.iloc[0] <= row.src.iloc[0] <= row.src_high.iloc[0]
    assert row.n_repeated.iloc[0] == 2 and row.seed_sd.iloc[0] > 0 and row.arch_sd.iloc[0] > 0
    curve = corr[(corr.proxy == "decoder_params") & (corr.target == "budget_valid_loss")]
    assert list(curve.fraction) == [0.5, 1.0] and list(curve.train_tokens) == [1920, 3840]
    assert curve.seed_sd.notna().all() and (curve.n == 3).all()
    assert {"0shot_mean_acc", "test_ppl"} <= set(corr.target)
    fronts = read_table(tmp_path / "results/validation/frontiers.parquet")
    assert set(fronts.cost) == {"latency_ms", "peak_memory_mb"} and (fronts.d_avg >= 0).all()
    for fig in ("proxy_vs_ppl", "src_per_proxy", "src_vs_cost", "src_vs_budget"):
        assert (tmp_path / f"results/figures/{fig}.png").read_bytes()[:4] == b"\x89PNG"

    again = _snakemake(tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
