"""The weight-sharing supernet: a candidate's model on its slices of the shared weights, for every
sliceable backbone; sandwich training on the one training loop, resume, the supernet_loss proxy,
its settings and its Snakemake rule."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import DATA, TINY_SPACES, data_path, needs_data, needs_executable, tiny_space
from safetensors.torch import load_file

from paretolm import config as configuration
from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import SearchSpace, load_space
from paretolm.proxies import Scorer
from paretolm.proxies.supernet_loss import SupernetSettings
from paretolm.supernet import Supernet, extreme, load, train_supernet

REPO = Path(__file__).resolve().parents[1]
SHAKES = DATA / "corpora/tinyshakespeare/input.txt"

TINY = TINY_SPACES["gpt2"]
FAST = {
    "steps": 30,
    "batch_size": 4,
    "seq_len": 32,
    "lr": 3e-3,
    "warmup_steps": 3,
    "eval_tokens": 256,
    "checkpoint_every": 10,
}


def byte_ids() -> tuple[np.ndarray, np.ndarray]:
    ids = np.frombuffer(SHAKES.read_bytes()[:120_000], dtype=np.uint8)
    return ids[:100_000], ids[100_000:]


def perturbed(net: Supernet) -> Supernet:
    """Every weight moved off its initial value (LayerNorms and biases included), so a slice that
    took the wrong rows or columns shows."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


# -- slicing ----------------------------------------------------------------------------------------


SLICEABLE = [b for b in TINY_SPACES if b != "gpt2"]  # tiny spaces of the other sliceable backbones


def space_of(name: str) -> SearchSpace:
    if name in TINY_SPACES:
        return tiny_space(name, name=name)
    return load_space(name, REPO / "config/spaces")


@pytest.mark.parametrize("space_name", ["gpt2_cpu_ground_truth", *SLICEABLE])
def test_sub_network_equals_the_plain_model_on_its_slices(space_name):
    space = space_of(space_name)
    net = perturbed(Supernet(space, vocab_size=300, max_seq_len=24))
    x = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    specs = [extreme(space, True), extreme(space, False), *space.sample(6, seed=3)]
    for spec in specs:
        plain = net.subnet(spec)  # the ordinary model of the spec, weights copied from the slices
        assert plain.spec == net.fit(spec) and plain.spec.vocab_size == 300 and plain.spec.max_seq_len == 24
        with torch.no_grad():
            assert torch.equal(net(x, spec).logits, plain(x).logits), spec
    # different candidates read different slices of the same tensors
    with torch.no_grad():
        assert len({float(net(x, s).logits.sum()) for s in specs}) > 1


def test_a_candidate_reads_the_leading_slices_and_its_gradients_reach_them():
    space = space_of("gpt2_cpu_ground_truth")
    net = Supernet(space, vocab_size=300, max_seq_len=24)
    small = net.fit(extreme(space, False))
    x = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(2))
    net(x, small, labels=x).loss.backward()
    wte = net.store["wte__emb_layers__0__weight"]
    d = small.d_model
    assert wte.grad[:, :d].abs().sum() > 0 and wte.grad[:, d:].abs().sum() == 0
    qkv = net.store["layers__0__attn__qkv__weight"]
    full = net.shapes["layers.0.attn.qkv.weight"][0] // 3  # Q, K and V parts of the largest
    rows = qkv.grad.abs().sum(dim=1).reshape(3, full)
    assert (rows[:, :d] > 0).all() and (rows[:, d:] == 0).all()  # the leading rows of each part


def test_candidates_outside_the_supernet_are_refused():
    space = space_of("gpt2_cpu_ground_truth")
    net = Supernet(space, vocab_size=300, max_seq_len=24)
    base = extreme(space, False)
    assert net.fit(base).vocab_size == 300 and net.fit(base).max_seq_len == 24  # retargeted
    for changes, message in (
        (
            {"d_model": 256, "n_head": 2},
            r"wte.emb_layers.0.weight: \[300, 256\] is outside "
            r"the supernet's \[300, 192\]",
        ),
        (
            {"n_layer": 5, "n_head": 2, "d_inner": 128},
            r"layers.4.ln_1.weight: the candidate "
            r"has a parameter the supernet",
        ),
        ({"n_layer": 2, "n_head": 2, "d_inner": [128, 1024]}, r"layers.1.mlp.fc.weight"),
        ({"div_val": 2}, r"wte.emb_projs.0: the candidate has a parameter"),
    ):
        with pytest.raises(ValueError, match=message):
            net.fit(ArchSpec("gpt2", **{"n_layer": 1, "d_model": 64, "n_head": 2, "d_inner": 128, **changes}))
    with pytest.raises(ValueError, match=r"backbone: this supernet is of a gpt2 space.*'opt'"):
        net.fit(ArchSpec("opt", n_layer=1, d_model=64, n_head=2, d_inner=128))
    with pytest.raises(ValueError, match=r"backbone: bert models cannot be sliced"):
        Supernet(load_space("speedlimit_bert", REPO / "config/spaces"), 300, 24)


# -- training ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data_path(SHAKES)  # skips (fails under PARETOLM_REQUIRE_DATA=1) when the corpus is missing
    train_ids, valid_ids = byte_ids()
    out = tmp_path_factory.mktemp("sn") / "tiny"
    meta = train_supernet(
        tiny_space(), train_ids, valid_ids, 256, SupernetSettings(space="tiny", **FAST), out, progress=False
    )
    return out, meta


@needs_data(SHAKES)
def test_sandwich_training_lowers_largest_and_smallest_loss(trained):
    out, meta = trained
    assert sorted(p.name for p in out.iterdir()) == ["supernet.json", "supernet.safetensors", "valid_ids.safetensors"]
    assert not out.with_name("tiny.checkpoint").exists()  # removed once the folder is written
    log = meta["log"]
    assert [r["step"] for r in log] == [10, 20, 30]  # one row per log_every (10) steps
    for which in ("largest", "smallest"):
        assert meta["final_loss"][which] < log[0][which] - 0.3, (which, log[0], meta["final_loss"])
    assert meta["train_seconds"] > 0 and meta["subnets_per_step"] == 4 and meta["steps"] == 30
    assert ArchSpec.from_json(meta["largest"]).d_model == 96 and ArchSpec.from_json(meta["smallest"]).d_model == 32
    windows = load_file(str(out / "valid_ids.safetensors"))["input_ids"]
    assert windows.shape == (8, 32) and meta["valid_windows"] == [8, 32]  # 256 tokens, 32 a window
    assert meta["provenance"]["stage"] == "supernet"


@needs_data(SHAKES)
def test_killed_run_resumes_to_the_same_weights(tmp_path, trained, monkeypatch):
    import paretolm.supernet.train as sn

    ref_out, ref_meta = trained
    train_ids, valid_ids = byte_ids()
    settings = SupernetSettings(space="tiny", **FAST)
    real = sn.train_batch

    def dies_at_25(ids, step, *args):
        if step == 25:
            raise KeyboardInterrupt("killed")
        return real(ids, step, *args)

    monkeypatch.setattr(sn, "train_batch", dies_at_25)
    out = tmp_path / "tiny"
    with pytest.raises(KeyboardInterrupt):
        train_supernet(tiny_space(), train_ids, valid_ids, 256, settings, out, progress=False)
    assert not out.exists() and (tmp_path / "tiny.checkpoint/state.json").is_file()
    monkeypatch.setattr(sn, "train_batch", real)
    meta = train_supernet(tiny_space(), train_ids, valid_ids, 256, settings, out, progress=False)
    a, b = load_file(str(ref_out / "supernet.safetensors")), load_file(str(out / "supernet.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda log: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in log]  # noqa: E731
    assert strip(meta["log"]) == strip(ref_meta["log"]) and meta["final_loss"] == ref_meta["final_loss"]


@needs_data(SHAKES)
def test_distillation_trains_the_sub_networks_on_soft_labels(tmp_path):
    train_ids, valid_ids = byte_ids()
    fast = {**FAST, "steps": 12, "random_subnets": 1, "distill": True}
    meta = train_supernet(
        tiny_space(),
        train_ids,
        valid_ids,
        256,
        SupernetSettings(space="tiny", **fast),
        tmp_path / "tiny",
        progress=False,
    )
    assert meta["settings"]["distill"] and meta["subnets_per_step"] == 3
    assert all(math.isfinite(r["smallest"]) for r in meta["log"])
    assert meta["log"][-1]["largest"] < 5.6  # below the initial ln(256) = 5.55 + the spread


# -- the proxy ----------------------------------------------------------------------------------
@needs_data(SHAKES)
def test_proxy_ranks_candidates_and_reports_costs(trained):
    out, _ = trained
    settings = {"supernet_loss": {"space": "tiny", "dir": str(out.parent)}}
    space = tiny_space()
    specs = [extreme(space, True), extreme(space, False), *space.sample(6, seed=5)]
    table = Scorer(["supernet_loss", "decoder_params"], seq_len=32, settings=settings).table(specs)
    values = table["supernet_loss"]
    assert np.isfinite(values).all() and (values < 0).all() and values.nunique() == len(specs)
    assert values.iloc[0] > values.iloc[1]  # the largest sub-network beats the smallest
    assert (table["supernet_loss_seconds"] > 0).all()
    net = load(out)
    assert load(out) is net  # read once per process
    assert -values.iloc[0] == pytest.approx(net.loss(specs[0]))
    with pytest.raises(ValueError, match=r"wte.emb_layers.0.weight: \[256, 128\] is outside the supernet's"):
        net.loss(ArchSpec("gpt2", n_layer=1, d_model=128, n_head=2, d_inner=64))


@needs_data(SHAKES)
@pytest.mark.parametrize("backbone", ["merino", "transformer_xl"])
def test_supernet_loss_scores_other_backbones_than_gpt2(tmp_path, backbone):
    """A supernet of a block-wise (shared layers, width projections) and of a relative-position
    space: trained, read back and scored like a GPT-2 one."""
    space = space_of(backbone)
    train_ids, valid_ids = byte_ids()
    fast = {**FAST, "steps": 12, "checkpoint_every": 100}
    train_supernet(
        space, train_ids, valid_ids, 256, SupernetSettings(space=backbone, **fast), tmp_path / backbone, progress=False
    )
    specs = [extreme(space, True), extreme(space, False), *space.sample(4, seed=2)]
    settings = {"supernet_loss": {"space": backbone, "dir": str(tmp_path)}}
    values = Scorer(["supernet_loss"], seq_len=32, settings=settings).table(specs)["supernet_loss"]
    assert np.isfinite(values).all() and values.nunique() == len(specs) and (values > -np.log(256) - 1).all()
    net = load(tmp_path / backbone)
    assert -values.iloc[2] == pytest.approx(net.loss(specs[2]))


def test_missing_supernet_names_the_rule(tmp_path):
    scorer = Scorer(["supernet_loss"], settings={"supernet_loss": {"space": "tiny", "dir": str(tmp_path)}})
    with pytest.raises(ValueError, match=r"no trained supernet in .*tiny.*rule supernet.*paretolm proxy supernet"):
        scorer.row(ArchSpec("gpt2", n_layer=1, d_model=16, n_head=1, d_inner=32))
    with pytest.raises(ValueError, match=r"proxies\.settings\.supernet_loss\.space: not set"):
        Scorer(["supernet_loss"]).row(ArchSpec("gpt2", n_layer=1, d_model=16, n_head=1, d_inner=32))


def test_cli_refuses_a_missing_space_file(tmp_path, capsys):
    from paretolm.cli import main

    assert main(["proxy", "supernet", "--space", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "no search space file" in capsys.readouterr().err


# -- settings and the config check --------------------------------------------------------------
def test_bad_settings_are_refused_naming_the_key():
    for bad, key in (
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"random_subnets": -1}, "random_subnets"),
        ({"distill": "yes"}, "distill"),
        ({"eval_tokens": 8, "seq_len": 16}, "eval_tokens"),
        ({"space": "../x"}, "space"),
    ):
        with pytest.raises(ValueError, match=rf"proxies\.settings\.supernet_loss\.{key}:"):
            SupernetSettings(**bad)
    with pytest.raises(ValueError, match=r"proxies\.settings\.supernet_loss\.stepz: unknown key"):
        Scorer(["supernet_loss"], settings={"supernet_loss": {"stepz": 3}})


def _config(tmp_path: Path, **overrides) -> dict:
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (spaces / "bert.yaml").write_text((REPO / "config/spaces/speedlimit_bert.yaml").read_text())
    cfg = {
        "spaces_dir": str(spaces),
        "sample": {"spaces": ["tiny"], "n": 4},
        "search": {"space": "tiny"},
        "targets": ["cpu"],
        "proxies": {"names": ["decoder_params", "supernet_loss"], "seq_len": 16},
        "datasets": {"sh": {"files": str(SHAKES), "split": {"train": 0.9, "validation": 0.1}}},
        "tokenizers": {"sh_bpe": {"type": "bpe", "vocab_size": 300, "train_on": "sh"}},
        "train": {"dataset": "sh", "tokenizer": "sh_bpe"},
    }
    return configuration.merge(cfg, overrides)


def test_config_check_refuses_supernet_loss_without_a_usable_space(tmp_path):
    with pytest.raises(ValueError, match=r"proxies\.settings\.supernet_loss\.space: not set"):
        configuration.validate_config(_config(tmp_path), REPO)
    # named only among the validation proxies: checked too
    only_val = _config(
        tmp_path, proxies={"names": ["decoder_params"]}, validation={"proxies": ["decoder_params", "supernet_loss"]}
    )
    with pytest.raises(ValueError, match=r"proxies\.settings\.supernet_loss\.space: not set"):
        configuration.validate_config(only_val, REPO)
    for settings, message in (
        ({"space": "nope"}, r"space: no search space file .*nope\.yaml"),
        (
            {"space": "bert"},
            r"space: the supernet slices causal backbones whose genes are "
            r"sizes; space 'bert' is a bert space",
        ),
        ({"space": "tiny", "batch_size": 0}, r"supernet_loss\.batch_size"),
        ({"space": "tiny", "stepz": 1}, r"supernet_loss.*stepz"),
    ):
        cfg = _config(tmp_path, proxies={"settings": {"supernet_loss": settings}})
        with pytest.raises(ValueError, match=message):
            configuration.validate_config(cfg, REPO)
    cfg = _config(tmp_path, proxies={"settings": {"supernet_loss": {"space": "tiny"}}}, train={"dataset": None})
    with pytest.raises(ValueError, match=r"train\.dataset: not set; supernet_loss trains"):
        configuration.validate_config(cfg, REPO)
    ok = configuration.validate_config(
        _config(tmp_path, proxies={"settings": {"supernet_loss": {"space": "tiny"}}}), REPO
    )
    assert ok["proxies"]["settings"]["supernet_loss"]["steps"] == SupernetSettings().steps  # schema default


# -- the rule -------------------------------------------------------------------------------------
def _workdir(tmp_path: Path, cfg: dict) -> Path:
    shutil.copytree(REPO / "workflow", tmp_path / "workflow")
    (tmp_path / "config/spaces").mkdir(parents=True)
    (tmp_path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY))
    cfg = {k: v for k, v in cfg.items() if k != "spaces_dir"}
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _snakemake(wd: Path, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=wd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.mark.slow
@needs_data(SHAKES)
@needs_executable("snakemake")
def test_rule_trains_the_supernet_that_the_proxies_and_correlate_stages_read(tmp_path):
    settings = {"space": "tiny", "steps": 4, "batch_size": 2, "seq_len": 16, "eval_tokens": 64, "warmup_steps": 1}
    cfg = _config(
        tmp_path,
        proxies={"names": ["decoder_params"], "settings": {"supernet_loss": settings}},
        validation={
            "sources": [{"kind": "sample", "space": "tiny", "n": 2}],
            "proxies": ["decoder_params", "supernet_loss"],
        },
    )
    wd = _workdir(tmp_path / "wd", cfg)
    # supernet_loss among the validation proxies only: correlate needs the supernet
    job = re.compile(r"^supernet\s+1$", re.M)  # its line in the dry run's job stats
    plan = _snakemake(wd, "-n", "results/correlation.parquet")
    assert job.search(plan) and "results/supernet/tiny" in plan

    out = _snakemake(wd, "results/supernet/tiny")
    folder = wd / "results/supernet/tiny"
    assert (folder / "supernet.safetensors").stat().st_size > 0, out
    import json

    meta = json.loads((folder / "supernet.json").read_text())
    assert meta["steps"] == 4 and meta["provenance"]["wildcards"] == {"space": "tiny"}
    assert meta["vocab_size"] == 300 and meta["valid_windows"] == [4, 16]
    # scored by the proxies stage once it is among proxies.names
    names = {"proxies": {"names": ["decoder_params", "supernet_loss"]}}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(configuration.merge(cfg, names)))
    _snakemake(wd, "results/proxies/tiny.parquet")
    from paretolm.core.artifacts import read_table

    table = read_table(wd / "results/proxies/tiny.parquet")
    assert np.isfinite(table["supernet_loss"]).all() and (table["supernet_loss_seconds"] > 0).all()
