"""``paretolm proxy``: list, score (analytic and data-dependent), NAS-Bench-BERT comparison."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import data_path

from paretolm.arch import ArchSpec
from paretolm.cli import main
from paretolm.counting import count
from paretolm.proxies.entropy import network_entropy

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


def test_score_data_proxy_from_text_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = data_path("corpora/tinyshakespeare/input.txt")
    small = tmp_path / "small.txt"
    small.write_text(text.read_text()[:5000])
    specs = tmp_path / "specs.jsonl"
    specs.write_text(SPECS[0].to_json() + "\n")
    args = ["proxy", "score", "--proxies", "relu_log_det,grad_norm", "--json", str(specs),
            "--data", str(small), "--seq-len", "16", "--batch-size", "3", "--costs"]
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
    monkeypatch.setattr("sys.stdin", io.StringIO('{"backbone": "gpt2", "n_layer": 0}\n'))
    assert main(["proxy", "score", "--proxies", "decoder_params", "--json", "-"]) == 2
    assert "line 1" in capsys.readouterr().err


@pytest.mark.slow
def test_nas_bench_bert_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbb = data_path("ground-truth/nas-bench-bert/BERT_benchmark.json").parent
    out = tmp_path / "nbb.parquet"
    assert main(["proxy", "nas-bench-bert", str(nbb), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "500 architectures" in text and "Synaptic Diversity" in text
    import pandas as pd

    from paretolm.commands.proxy import nas_bench_bert_src

    table = pd.read_parquet(out)
    assert len(table) == 500 and table["merino_entropy"].gt(0).all()
    src = {r["proxy"]: r["src_glue"] for r in nas_bench_bert_src(table)}
    assert src["merino_entropy"] > 0.5  # wider/deeper encoders score higher GLUE
    assert src["Number of Parameters"] == pytest.approx(0.6525, abs=1e-3)  # published column, recomputed


def test_nas_bench_bert_shapes_by_hand() -> None:
    from paretolm.commands.proxy import nas_bench_bert_matrix_params, representable

    layers = [
        {"operation_type": "SA", "operation_parameter": "SDP", "num_operation_heads": 2,
         "feed_forward_dimension": 512, "num_feed_forward": 1},
        {"operation_type": "LT", "operation_parameter": "DFT", "num_operation_heads": 2,
         "feed_forward_dimension": 1024, "num_feed_forward": 3},
        {"operation_type": "DSC", "operation_parameter": 5, "num_operation_heads": 2,
         "feed_forward_dimension": 512, "num_feed_forward": 1},
    ]
    h = 128
    expected = (4 * h * h + 2 * h * 512) + 3 * 2 * h * 1024 + (h * h + 2 * h * 512)
    assert nas_bench_bert_matrix_params(layers, h) == expected
    assert not representable(layers)
    assert representable([layers[0], layers[0]])
