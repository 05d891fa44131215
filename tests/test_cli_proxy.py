"""``paretolm proxy``: list, score (analytic and data-dependent), NAS-Bench-BERT comparison."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import data_path

from paretolm.cli import main
from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.proxies.entropy import EntropySettings, network_entropy

SPECS = [
    ArchSpec(backbone="gpt2", n_layer=2, d_model=64, n_head=2, d_inner=128, max_seq_len=32),
    ArchSpec(backbone="merino", blocks=[{"d_model": 64, "ffn_ratio": 2.0, "n_layer": 2}], max_seq_len=32),
]


def _stdin(monkeypatch: pytest.MonkeyPatch, specs: list[ArchSpec]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(s.to_json() + "\n" for s in specs)))


def test_list_names_every_proxy_with_sign_and_data(capsys: pytest.CaptureFixture) -> None:
    assert main(["proxy", "list", "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {"merino_entropy", "decoder_params", "synflow", "dss", "relu_log_det"} <= set(rows)
    assert rows["synflow"]["needs_data"] and not rows["merino_entropy"]["needs_data"]
    assert all("higher" in r["sign"] for r in rows.values())


def test_score_analytic_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _stdin(monkeypatch, SPECS)
    assert main(["proxy", "score", "--proxies", "merino_entropy,decoder_params", "--json", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["arch_id"] for r in rows] == [s.arch_id for s in SPECS]
    for r, s in zip(rows, SPECS, strict=True):
        assert set(r) == {"arch_id", "merino_entropy", "decoder_params"}
        assert r["merino_entropy"] == pytest.approx(network_entropy(s))
        assert r["decoder_params"] == count(s).decoder_params


def test_score_entropy_eps_reaches_the_scorer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _stdin(monkeypatch, SPECS)
    assert main(["proxy", "score", "--proxies", "merino_entropy", "--json", "-", "--entropy-eps", "0.5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for r, s in zip(rows, SPECS, strict=True):
        assert r["merino_entropy"] == pytest.approx(network_entropy(s, EntropySettings(eps=0.5)))
        assert r["merino_entropy"] != pytest.approx(network_entropy(s))
    _stdin(monkeypatch, SPECS)
    assert main(["proxy", "score", "--proxies", "merino_entropy", "--json", "-", "--entropy-eps", "0"]) == 2
    assert "eps" in capsys.readouterr().err


def test_score_data_proxy_from_text_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = data_path("corpora/tinyshakespeare/input.txt")
    small = tmp_path / "small.txt"
    small.write_text(text.read_text()[:5000])
    specs = tmp_path / "specs.jsonl"
    specs.write_text(SPECS[0].to_json() + "\n")
    args = [
        "proxy",
        "score",
        "--proxies",
        "relu_log_det,grad_norm",
        "--json",
        str(specs),
        "--data",
        str(small),
        "--seq-len",
        "16",
        "--batch-size",
        "3",
        "--costs",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["relu_log_det"] == first["relu_log_det"]  # seeded batch
    assert first["grad_norm"] > 0 and first["grad_norm_flops"] > 0 and first["relu_log_det_seconds"] > 0


def test_score_errors_name_the_field(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _stdin(monkeypatch, SPECS)
    assert main(["proxy", "score", "--proxies", "synflow", "--json", "-"]) == 2
    assert "data" in capsys.readouterr().err
    _stdin(monkeypatch, SPECS)
    assert main(["proxy", "score", "--proxies", "nope", "--json", "-"]) == 2
    assert "unknown proxy" in capsys.readouterr().err
    good = '{"backbone": "gpt2", "n_layer": 1, "d_model": 64, "n_head": 2, "d_inner": 64}'
    monkeypatch.setattr("sys.stdin", io.StringIO('{"backbone": "gpt2", "n_layer": 0}\n' + good + "\n"))
    assert main(["proxy", "score", "--proxies", "decoder_params", "--json", "-"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert rows[0] == {"line": 1, "error": "n_layer: must be positive, got 0"}
    assert rows[1]["decoder_params"] > 0 and "1 line(s) failed" in captured.err


@pytest.mark.slow
def test_nas_bench_bert_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbb = data_path("ground-truth/nas-bench-bert/BERT_benchmark.json").parent
    out = tmp_path / "nbb.parquet"
    assert main(["proxy", "nas-bench-bert", str(nbb), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "500 architectures" in text and "Synaptic Diversity" in text
    import pandas as pd

    from paretolm.analysis.nas_bench_bert import src_with_glue

    table = pd.read_parquet(out)
    assert len(table) == 500 and table["merino_entropy"].gt(0).all()
    src = {r["proxy"]: r["src_glue"] for r in src_with_glue(table)}
    assert src["merino_entropy"] == pytest.approx(0.7867, abs=1e-4)  # wider/deeper encoders score higher GLUE
    assert src["matrix_params"] == pytest.approx(0.7902, abs=1e-4)
    assert src["Number of Parameters"] == pytest.approx(0.6525, abs=1e-3)  # published column, recomputed


def test_nas_bench_bert_shapes_by_hand() -> None:
    from paretolm.analysis.nas_bench_bert import matrix_params, merino_entropy, representable, sublayers

    layers = [
        {
            "operation_type": "SA",
            "operation_parameter": "SDP",
            "num_operation_heads": 2,
            "feed_forward_dimension": 512,
            "num_feed_forward": 1,
        },
        {
            "operation_type": "LT",
            "operation_parameter": "DFT",
            "num_operation_heads": 2,
            "feed_forward_dimension": 1024,
            "num_feed_forward": 3,
        },
        {
            "operation_type": "DSC",
            "operation_parameter": 5,
            "num_operation_heads": 2,
            "feed_forward_dimension": 512,
            "num_feed_forward": 1,
        },
    ]
    h = 128
    expected = (4 * h * h + 2 * h * 512) + 3 * 2 * h * 1024 + (h * h + 2 * h * 512)
    assert matrix_params(layers, h) == expected
    assert [s.kind for s in sublayers(layers, h)] == ["mha", "ffn", "ffn", "ffn", "ffn", "mha", "ffn"]
    # entropy from the same shapes, with the settings passed explicitly
    base = merino_entropy(layers, h)
    assert base == merino_entropy(layers, h, EntropySettings()) > 0
    assert merino_entropy(layers, h, EntropySettings(eps=0.5)) > base  # smaller eps, larger log det
    assert not representable(layers)
    assert representable([layers[0], layers[0]])


def test_data_batches_come_from_one_window_cutter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import numpy as np
    import torch
    import yaml
    from tokenizers import ByteLevelBPETokenizer

    from paretolm.data import data_config, file_batch, load_batch, random_windows, text_batch
    from paretolm.proxies import Scorer

    tok = data_path("tokenizers/gpt2")
    monkeypatch.setenv("PARETOLM_DATA", str(tok.parents[1]))
    small = tmp_path / "small.txt"
    small.write_text(data_path("corpora/wikitext-2/valid.txt").read_text()[:20_000])

    # a plain text file: GPT-2 ids of the whole text, windows from rng(seed)
    enc = ByteLevelBPETokenizer(str(tok / "vocab.json"), str(tok / "merges.txt"))
    ids = np.asarray(enc.encode(small.read_text()).ids, dtype=np.int64)
    batch = text_batch(small, 3, 16, seed=5)
    assert batch.dtype == torch.int64 and batch.shape == (3, 16)
    assert torch.equal(batch, random_windows(ids, 3, 16, np.random.default_rng(5)))
    assert torch.equal(file_batch(small, 3, 16, seed=5), batch)

    # a config YAML: its proxies.data block with the file's datasets/tokenizers sections
    block = {"dataset": "small", "tokenizer": "gpt2", "cache_dir": str(tmp_path / "cache")}
    cfg = {
        "proxies": {"data": block},
        "datasets": {"small": {"files": {"train": str(small)}}},
        "tokenizers": {"gpt2": {"type": "gpt2", "path": str(tok)}},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    full = dict(block, datasets=cfg["datasets"], tokenizers=cfg["tokenizers"])
    from_yaml = file_batch(config, 3, 16, seed=5)
    assert torch.equal(from_yaml, load_batch(full, 3, 16, seed=5))
    split = data_config(full).split("train").ids
    assert torch.equal(from_yaml, random_windows(split, 3, 16, np.random.default_rng(5)))

    # the CLI scores that batch through the Scorer
    specs = tmp_path / "specs.jsonl"
    specs.write_text(SPECS[0].to_json() + "\n")
    assert (
        main(
            [
                "proxy",
                "score",
                "--proxies",
                "relu_log_det",
                "--json",
                str(specs),
                "--data",
                str(config),
                "--seq-len",
                "16",
                "--batch-size",
                "3",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out)
    value, _ = Scorer(["relu_log_det"], seq_len=16, seed=5, batch=from_yaml).score(SPECS[0], "relu_log_det")
    assert row == {"arch_id": SPECS[0].arch_id, "relu_log_det": value}
