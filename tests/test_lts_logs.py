"""`paretolm analyze lts-logs` on LTS's own trained architectures reproduces the paper's finding."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, needs_data

from paretolm.cli import main
from paretolm.core.artifacts import read_provenance, read_table

LTS = DATA / "ground-truth" / "lts-archai"
# the module reads and scores all 1,121 logged architectures once (about 25 s): an end-to-end run
pytestmark = [needs_data(LTS), pytest.mark.slow]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("lts") / "lts.parquet"
    assert main(["analyze", "lts-logs", str(LTS), "--out", str(out)]) == 0
    return out


def test_decoder_params_src_reaches_lts_finding_on_every_set(table):
    df = read_table(table)
    sets = sorted(p.name for p in LTS.iterdir() if p.is_dir())
    dec = df[df.proxy == "decoder_params"].set_index("set")
    assert sorted(dec.index) == sets
    # Negative sign: more decoder parameters, lower perplexity. LTS reports the magnitude >= 0.95
    # (the homogeneous Transformer-XL set gives -0.9499, 0.95 to two decimals).
    assert (dec.src < 0).all()
    assert (dec.src.abs().round(2) >= 0.95).all(), dec.src
    assert dec.loc["random_GPT2_wt103", "n"] == 200
    # paretolm's analytic count ranks exactly as LTS's own reported count
    ref = df[df.proxy == "lts_nonembedding"].set_index("set")
    assert np.allclose(dec.src, ref.loc[dec.index, "src"], atol=2e-3)


def test_pareto_sets_get_d_avg_and_hypervolume(table):
    df = read_table(table)
    par = df[df.set.str.startswith("pareto") & (df.proxy == "decoder_params")]
    assert len(par) == 6
    assert par.d_avg_latency.between(0, 0.05).all() and par.d_avg_memory.between(0, 0.05).all()
    assert (par.hypervolume_proxy_latency <= par.hypervolume_gt_latency + 1e-9).all()
    rnd = df[df.set.str.startswith("random")]
    assert rnd.d_avg_latency.isna().all()
    # the ground-truth hypervolume of a set does not depend on the proxy
    assert df[df.set == "pareto_GPT2_lm1b_arm"].hypervolume_gt_latency.nunique() == 1
    prov = read_provenance(table)
    assert prov["stage"] == "analyze-lts-logs"


def test_cli_prints_rows_and_rejects_bad_dir(table, capsys, tmp_path):
    assert (
        main(
            [
                "analyze",
                "lts-logs",
                str(LTS),
                "--sets",
                "random_GPT2_wt103",
                "--proxies",
                "decoder_params",
                "--out",
                str(tmp_path / "one.parquet"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["set", "proxy", "n", "src", "kendall"]
    assert out[1].split()[:3] == ["random_GPT2_wt103", "decoder_params", "200"]
    assert main(["analyze", "lts-logs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "dir" in capsys.readouterr().err


def test_module_api_gives_the_cli_table(table):
    from paretolm.analysis.lts_logs import analyze_lts

    direct = analyze_lts(LTS, sets=["pareto_GPT2_lm1b_arm"], proxies=["decoder_params", "merino_entropy"])
    via_cli = read_table(table)
    via_cli = via_cli[
        (via_cli.set == "pareto_GPT2_lm1b_arm")
        & via_cli.proxy.isin(["decoder_params", "merino_entropy", "lts_nonembedding"])
    ]
    assert list(direct.proxy) == ["decoder_params", "merino_entropy", "lts_nonembedding"]
    cols = ["src", "kendall", "d_avg_latency", "hypervolume_gt_latency", "hypervolume_proxy_latency"]
    assert np.allclose(direct.set_index("proxy")[cols], via_cli.set_index("proxy").loc[direct.proxy, cols])
