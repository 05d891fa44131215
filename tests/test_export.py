"""Export: every causal backbone round-trips through a Hugging Face folder with the same logits;
homogeneous gpt2 / opt become stock transformers models that load without paretolm; the model
card states what the tables measured; `paretolm train` then `paretolm export` end to end; the
workflow's export rule plans."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import DATA, needs_data, needs_executable
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, LlamaForCausalLM, OPTForCausalLM

from paretolm import cli
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, write_table
from paretolm.core.backbones import BACKBONES
from paretolm.export.folder import export_model, frontier_row, stock_family
from paretolm.models import hf
from paretolm.training.trainer import save_model

CAUSAL = [name for name in BACKBONES.names() if BACKBONES.get(name).causal]
HOMOGENEOUS = {
    "gpt2": {
        "backbone": "gpt2",
        "n_layer": 2,
        "d_model": 32,
        "n_head": 4,
        "d_inner": 48,
        "vocab_size": 300,
        "max_seq_len": 64,
    },
    "opt": {
        "backbone": "opt",
        "n_layer": 2,
        "d_model": 32,
        "n_head": 4,
        "d_inner": 48,
        "vocab_size": 300,
        "max_seq_len": 64,
    },
}
HOMOGENEOUS["llama"] = {  # grouped-query attention, an untied head and Llama 3's rotary base
    "backbone": "llama",
    "n_layer": 2,
    "d_model": 32,
    "n_head": 4,
    "n_kv_head": 2,
    "d_inner": 48,
    "head_dim": 8,
    "rope_theta": 500000.0,
    "tie_weights": False,
    "vocab_size": 300,
    "max_seq_len": 64,
}
STOCK = {"gpt2": GPT2LMHeadModel, "opt": OPTForCausalLM, "llama": LlamaForCausalLM}


def _trained(spec: ArchSpec, folder: Path) -> torch.nn.Module:
    """A model with non-trivial weights (biases and norms off their init), saved as training does."""
    torch.manual_seed(0)
    model = hf.from_spec(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(model, spec, folder)
    return model


def _assert_same_logits(a: torch.nn.Module, b: torch.nn.Module, vocab: int) -> None:
    gen = torch.Generator().manual_seed(1)
    for shape in ((1, 1), (2, 17), (3, 40)):
        x = torch.randint(0, vocab, shape, generator=gen)
        with torch.no_grad():
            torch.testing.assert_close(b(input_ids=x).logits, a(input_ids=x).logits)


def test_every_causal_backbone_is_covered():
    assert {"gpt2", "opt", "transformer_xl", "merino", "par", "llama"} <= set(CAUSAL) and "bert" not in CAUSAL


@pytest.mark.parametrize("name", CAUSAL)
def test_wrapper_export_keeps_the_logits(name, tmp_path):
    spec = ArchSpec.from_dict(BACKBONES.get(name).example)
    model = _trained(spec, tmp_path / "run/model")
    summary = export_model(tmp_path / "run/model", tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert summary["stock"] is (stock_family(spec) is not None)
    if not summary["stock"]:
        assert isinstance(loaded, hf.ParetoLMForCausalLM)
        assert json.loads((tmp_path / "out/config.json").read_text())["model_type"] == "paretolm"
    assert (tmp_path / "out/model.safetensors").is_file() and not list((tmp_path / "out").glob("*.bin"))
    _assert_same_logits(model, loaded, spec.vocab_size)


@pytest.mark.parametrize("name", sorted(HOMOGENEOUS))
def test_homogeneous_specs_export_to_stock_classes(name, tmp_path):
    spec = ArchSpec.from_dict(HOMOGENEOUS[name])
    model = _trained(spec, tmp_path / "run/model")
    export_model(tmp_path / "run/model", tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(loaded) is STOCK[name]
    _assert_same_logits(model, loaded, spec.vocab_size)
    # the wrapper stays available on request
    export_model(tmp_path / "run/model", tmp_path / "wrapped", stock=False)
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "wrapped"), hf.ParetoLMForCausalLM)


def test_stock_exports_load_without_paretolm(tmp_path):
    expected = {}
    for name, genes in HOMOGENEOUS.items():
        spec = ArchSpec.from_dict(genes)
        model = _trained(spec, tmp_path / name / "model")
        export_model(tmp_path / name / "model", tmp_path / f"{name}-hf")
        x = torch.arange(20).remainder(spec.vocab_size)[None]
        with torch.no_grad():
            expected[name] = model(input_ids=x).logits[0, -1].tolist()
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    script = textwrap.dedent("""
        import json, sys
        sys.modules["paretolm"] = None  # any import of paretolm now fails
        import torch
        from transformers import AutoModelForCausalLM
        root = sys.argv[1]
        expected = json.load(open(f"{root}/expected.json"))
        for name, logits in expected.items():
            model = AutoModelForCausalLM.from_pretrained(f"{root}/{name}-hf").eval()
            x = torch.arange(20).remainder(model.config.vocab_size)[None]
            with torch.no_grad():
                got = model(input_ids=x).logits[0, -1]
            torch.testing.assert_close(got, torch.tensor(logits))
            print(name, type(model).__name__)
        assert not any(m.startswith("paretolm.") for m in sys.modules)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "gpt2 GPT2LMHeadModel" in out.stdout and "opt OPTForCausalLM" in out.stdout
    assert "llama LlamaForCausalLM" in out.stdout


def _frontier(tmp_path: Path, spec: ArchSpec) -> Path:
    other = spec.with_(n_layer=1, n_head=[4], d_inner=[48])
    table = __import__("pandas").DataFrame(
        [
            {"arch_id": other.arch_id, "spec": other.to_json(), "latency_ms": 0.5, "peak_memory_mb": 3.0},
            {"arch_id": spec.arch_id, "spec": spec.to_json(), "latency_ms": 1.25, "peak_memory_mb": 7.5},
        ]
    )
    part = {
        "search": {"method": "lts", "measure": "all", "space": "tiny", "seed": 0},
        "hardware": {"device": "cpu", "runtime": "torch", "dtype": "float32", "threads": 1},
        "profile": {"batch": 1, "seq_len": 32, "latency": "prefill"},
    }
    path = tmp_path / "pareto_cpu.parquet"
    write_table(table, path, provenance("search", part, wildcards={"hardware": "cpu", "method": "lts"}))
    return path


def test_model_card_states_what_was_measured(tmp_path):
    import pandas as pd

    from paretolm.core.artifacts import read_provenance
    from paretolm.core.counting import count

    spec = ArchSpec.from_dict(HOMOGENEOUS["gpt2"])
    _trained(spec, tmp_path / "run/model")
    export_model(tmp_path / "run/model", tmp_path / "bare")
    bare = (tmp_path / "bare/README.md").read_text()
    assert "Latency and memory: not measured" in bare and "zero-shot accuracy: not measured" in bare
    front = _frontier(tmp_path, spec)
    table = pd.read_parquet(front)
    assert frontier_row(table, 0)["latency_ms"] == 0.5 and frontier_row(table, 1)["arch_id"] == spec.arch_id
    evaluation = pd.Series(
        {
            "arch_id": spec.arch_id,
            "spec": spec.to_json(),
            "valid_ppl": 41.5,
            "test_ppl": 43.25,
            "0shot_copa_acc": 0.55,
            "latency_ms": 1.5,
            "peak_memory_mb": 8.0,
        }
    )
    export_model(
        tmp_path / "run/model",
        tmp_path / "out",
        frontier=table.sort_values("latency_ms"),
        frontier_prov=read_provenance(front),
        evaluation=evaluation,
        rank=1,
    )
    card = (tmp_path / "out/README.md").read_text()
    for text in (
        "1.25 ms",
        "7.5 MB",
        "1.5 ms",
        "8 MB",
        "`valid_ppl` | 41.5",
        "`0shot_copa_acc` | 0.55",
        "search method: `lts`",
        "rank 1 by `latency_ms`",
        "runtime torch",
        "seq_len 32",
        "config hash: `",
        f"{count(spec, 64).decoder_params:,} decoder",
        "GPT2LMHeadModel",
    ):
        assert text in card, text
    assert "not measured" not in card


TRAIN_CONFIG = {
    "datasets": {
        "shakespeare": {
            "files": str(DATA / "corpora/tinyshakespeare/input.txt"),
            "split": {"train": 0.9, "validation": 0.1},
        }
    },
    "tokenizers": {"sh_bpe": {"type": "bpe", "vocab_size": 300, "train_on": "shakespeare"}},
    "train": {
        "preset": "cpu-tiny",
        "dataset": "shakespeare",
        "tokenizer": "sh_bpe",
        "cache_dir": "cache",
        "budgets": [],
    },
}


@needs_data("corpora/tinyshakespeare/input.txt")
def test_train_then_export_end_to_end(tmp_path, monkeypatch, capsys):
    from paretolm.training import loop as training

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TRAIN_CONFIG))
    spec = {"backbone": "gpt2", "n_layer": 1, "d_model": 32, "n_head": 2, "d_inner": 64, "max_seq_len": 48}
    args = [
        "train",
        "--config",
        "config.yaml",
        "--spec",
        json.dumps(spec),
        "--out",
        "run",
        "--steps",
        "12",
        "--checkpoint-every",
        "4",
        "--log-every",
        "2",
        "--seq-len",
        "32",
        "--no-progress",
    ]

    # killed after its first checkpoint, then started again: it resumes from step 4
    real_save = training.save_checkpoint

    def save_then_die(*a, **k):
        real_save(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    assert (tmp_path / "run/checkpoint").is_dir() and (tmp_path / "run/tokenizer/tokenizer.json").is_file()
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    capsys.readouterr()
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_from"] == 4 and summary["steps"] == 12
    trained = ArchSpec.from_json((tmp_path / "run/model/spec.json").read_text())
    assert trained.vocab_size == 300  # retargeted to the tokenizer

    # another recipe in the same folder while a checkpoint is there is refused
    (tmp_path / "run/checkpoint").mkdir()
    assert cli.main([*args[:-1], "--lr", "0.01"]) == 2
    (tmp_path / "run/checkpoint").rmdir()

    assert cli.main(["export", "run", "--out", "hf"]) == 0
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert type(model) is GPT2LMHeadModel and len(tok) == 300
    ids = tok("ROMEO:", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5 and isinstance(tok.decode(out[0]), str)
    card = (tmp_path / "hf/README.md").read_text()
    assert "steps: 12" in card and "dataset `shakespeare`" in card


def test_train_needs_one_source(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TRAIN_CONFIG))
    assert cli.main(["train", "--config", "config.yaml", "--out", "run"]) == 2
    assert "--spec or --frontier" in capsys.readouterr().err


@needs_executable("snakemake")
def test_export_rule_plans_after_the_validation_half(tmp_path):
    from test_workflow import TRAINING_DATA, make_workdir, planned_jobs, tiny_config

    wd = make_workdir(tmp_path, tiny_config(**TRAINING_DATA))
    jobs = planned_jobs(wd, "results/export/cpu/")
    assert jobs["export"] == 1 and jobs["select_validation"] == 1 and jobs["search"] == 1


@needs_data("corpora/tinyshakespeare/input.txt")
def test_export_stage_writes_the_trained_frontier(tmp_path, monkeypatch):
    import pandas as pd

    from paretolm.core.artifacts import read_table
    from paretolm.stages import export as export_stage
    from paretolm.stages.select import select_archs

    monkeypatch.chdir(tmp_path)
    searched = [
        ArchSpec.from_dict({**HOMOGENEOUS["gpt2"], "vocab_size": 512, "max_seq_len": 16, "n_layer": n}) for n in (2, 1)
    ]
    frontier = tmp_path / "pareto_cpu.parquet"
    write_table(
        pd.DataFrame(
            [
                {"arch_id": s.arch_id, "spec": s.to_json(), "latency_ms": 2.0 - i, "peak_memory_mb": 5.0}
                for i, s in enumerate(searched)
            ]
        ),
        frontier,
        provenance("search", {"search": {"method": "lts"}}, wildcards={"hardware": "cpu"}),
    )
    part = {
        **TRAIN_CONFIG,
        "train": {**TRAIN_CONFIG["train"], "seq_len": 32},
        "spaces_dir": "spaces",
        "validation": {"sources": [{"kind": "frontier", "hardware": "cpu"}], "repeats": {}},
        "export": {"sort_by": "latency_ms", "stock": True},
    }
    archs = tmp_path / "archs.parquet"
    write_table(select_archs(part, {"frontier_cpu": str(frontier)}), archs, provenance("select", {}))
    runs = export_stage.runs(part, frontier, archs)
    assert [r["frontier_arch_id"] for r in runs] == [searched[1].arch_id, searched[0].arch_id]  # fastest first
    models, evals = [], []
    for r in runs:
        spec = ArchSpec.from_json(read_table(archs).set_index("arch_id").loc[r["run"], "spec"])
        assert spec.vocab_size == 300 and spec.max_seq_len == 32
        _trained(spec, tmp_path / f"train/{r['run']}/model")
        models.append(tmp_path / f"train/{r['run']}/model")
        evals.append(tmp_path / f"eval/{r['run']}.parquet")
        write_table(
            pd.DataFrame([{"arch_id": r["run"], "spec": spec.to_json(), "valid_ppl": 12.5 + r["rank"]}]),
            evals[-1],
            provenance("evaluate", {}),
        )
    export_stage.run(
        part, hardware="cpu", frontier=frontier, archs=archs, models=models, evals=evals, out=tmp_path / "export/cpu"
    )
    index = json.loads((tmp_path / "export/cpu/index.json").read_text())["models"]
    assert [m["folder"] for m in index] == [f"{r['rank']:02d}-{r['run']}" for r in runs]
    first = tmp_path / "export/cpu" / index[0]["folder"]
    assert type(AutoModelForCausalLM.from_pretrained(first)) is GPT2LMHeadModel
    assert len(AutoTokenizer.from_pretrained(first)) == 300
    assert "`valid_ppl` | 12.5" in (first / "README.md").read_text()
    with pytest.raises(ValueError, match="no {kind: frontier, hardware: arm} source"):
        export_stage.config_part({"validation": {"sources": part["validation"]["sources"]}}, hardware="arm")
