"""Bad configuration stops the run before any job, with a short message that names the key, the
file and the line; `--config` values are read as the schema's types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paretolm.config import load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"


def load(**overrides):
    return load_config(CONFIG, overrides=overrides, root=ROOT)


def test_strings_from_the_command_line_become_numbers_and_booleans() -> None:
    config = load(
        sample={"n": "6"},
        search={"plot": "false", "bounds": {"latency_ms_max": "12.5"}},
        profile={"rel_iqr_max": "0.2"},
    )
    assert config["sample"]["n"] == 6 and config["search"]["plot"] is False
    assert config["search"]["bounds"]["latency_ms_max"] == 12.5 and config["profile"]["rel_iqr_max"] == 0.2
    # a coerced value still meets the cross-field rules, with the right reason
    with pytest.raises(ValueError, match=r"^search\.lts\.parents: 50 is more than search\.lts\.population"):
        load(search={"lts": {"parents": "50"}})
    with pytest.raises(ValueError, match=r"^sample\.n: expected integer, got 'six'"):
        load(sample={"n": "six"})
    assert load(sample={"spaces": ["gpt2_cpu_small"]})["sample"]["spaces"] == ["gpt2_cpu_small"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"validation": {"proxies": ["nope"]}}, r"^validation\.proxies\[0\]: unknown proxy 'nope'"),
        ({"proxies": {"names": ["decoder_params", "nope"]}}, r"^proxies\.names\[1\]: unknown proxy 'nope'"),
        (
            {"proxies": {"settings": {"merino_entropy": {"epsilon": 2}}}},
            r"^proxies\.settings\.merino_entropy\.epsilon: unknown key \(did you mean 'eps'",
        ),
        ({"proxies": {"names": ["decoder_params", "synflow"]}}, r"^proxies\.data: proxies \['synflow'\] need"),
        ({"evaluate": {"zero_shot": {"limit": -5}}}, r"^evaluate\.zero_shot\.limit: -5 must be"),
        ({"evaluate": {"zero_shot": {"tasks": ["mmlu"]}}}, r"^evaluate\.zero_shot\.tasks\[0\]: unknown task 'mmlu'"),
        ({"evaluate": {"datasets": {"nope": ["validation"]}}}, r"^evaluate\.datasets\.nope: unknown dataset"),
        ({"validation": {"sources": [{"kind": "sample"}]}}, r"^validation\.sources\[0\]\.space: a sample source"),
        (
            {"validation": {"sources": [{"kind": "frontier", "hardware": "tpu"}]}},
            r"^validation\.sources\[0\]\.hardware: unknown target 'tpu'",
        ),
        (
            {
                "validation": {
                    "sources": [
                        {
                            "kind": "baselines",
                            "base": {"backbone": "gpt2", "d_model": 64, "n_head": 3, "d_inner": 64},
                            "n_layer": [1],
                        }
                    ]
                }
            },
            r"^validation\.sources\[0\]\.base: n_head\[0\]: 3 heads do not divide",
        ),
        ({"validation": {"hardware": "tpu"}}, r"^validation\.hardware: unknown target 'tpu'"),
        ({"search": {"bounds": {"params": {"min": 5, "max": 1}}}}, r"^search\.bounds\.params\.min: 5 is above max=1"),
        ({"train": {"dataset": "nope"}}, r"^train\.dataset: unknown dataset 'nope'"),
        ({"train": {"tokenizer": "nope"}}, r"^train\.tokenizer: unknown tokenizer 'nope'"),
        ({"train": {"warmup_steps": -1}}, r"^train\.warmup_steps"),
        (
            {"tokenizers": {"x": {"type": "bpe", "vocab_size": 100, "train_on": "nope"}}},
            r"^tokenizers\.x\.train_on: unknown dataset 'nope'",
        ),
        ({"datasets": {"x": {"files": "a.txt"}}}, r"^datasets\.x\.split: a single file needs fractions"),
        ({"sample": {"spaces": ["nope"]}}, r"^space: no search space file"),
        ({"nope": 1}, r"^nope: unknown key \(known: datasets, evaluate"),
        (
            {"search": {"lts": {"iteratoins": 3}}},
            r"^search\.lts\.iteratoins: unknown key \(did you mean 'iterations'\?\)",
        ),
        ({"hardware": {"cpu": {"device": "cpu", "threads": "many"}}}, r"^hardware\.cpu\.threads: expected integer"),
    ],
)
def test_both_halves_are_checked_before_any_job(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load(**overrides)
    assert len(str(info.value)) < 400  # a reason, not a dump of the schema or the config


def test_errors_name_the_file_and_line(tmp_path) -> None:
    preset = tmp_path / "mine.yaml"
    preset.write_text("sample:\n  n: 4\nsearch:\n  lts:\n    iteratoins: 3\n")
    import yaml

    config = yaml.safe_load(CONFIG.read_text())
    from paretolm.config import merge

    merged = merge(config, yaml.safe_load(preset.read_text()))
    with pytest.raises(ValueError, match=rf"^search\.lts\.iteratoins: unknown key .*\[{preset}:5\]$"):
        validate_config(merged, root=ROOT, files=[CONFIG, preset])
    merged = merge(config, {"search": {"lts": {"parents": 99}}})
    with pytest.raises(ValueError, match=rf"\[{CONFIG}:\d+\]$"):
        validate_config(merged, root=ROOT, files=[CONFIG])


@pytest.mark.slow
def test_snakemake_reports_config_errors_before_any_job(tmp_path) -> None:
    for name in ("workflow", "config"):
        shutil.copytree(ROOT / name, tmp_path / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    ok = run("-n", "--config", "sample={n: 6}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = run("--config", "search={lts: {parents: 50}}")
    assert bad.returncode != 0
    assert "search.lts.parents: 50 is more than search.lts.population" in bad.stdout + bad.stderr
    (tmp_path / "config" / "config.yaml").write_text(CONFIG.read_text() + "\nsample:\n  n: [6\n")
    broken = run("-n")
    assert broken.returncode != 0
    said = broken.stdout + broken.stderr
    assert "config/config.yaml:" in said and "YAML syntax error" in said
    assert not (tmp_path / "results").exists()
