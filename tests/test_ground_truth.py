"""The LTS ground-truth readers against the real lts-archai logs."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import DATA, needs_data

from paretolm.analysis.lts_archai import (
    backbone_of_set,
    iter_lts_archs,
    load_lts_archs,
    lts_spec_from_model_config,
)

ROOT = DATA / "ground-truth" / "lts-archai"
pytestmark = needs_data(ROOT)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return load_lts_archs()


def test_every_set_and_job_is_read(table):
    sizes = table.groupby("set").size().to_dict()
    assert sizes["random_GPT2_wt103"] == 200
    assert sizes["random_TransXL_lm1b"] == 186
    assert sizes["random_TransXL_wt103_homogeneous"] == 99
    assert sizes["pareto_GPT2_lm1b_arm"] == 45
    assert len(sizes) == 11
    assert not table.duplicated(["set", "job"]).any()


def test_random_sets_match_lts_flat_summary(table):
    """881 random architectures have a perplexity, exactly the rows of LTS's own flat CSV."""
    random = table[(table.kind == "random") & table.valid_ppl.notna()]
    assert len(random) == 881
    csv = pd.read_csv(ROOT / "lts_random_archs_summary.csv")
    merged = csv.merge(random, left_on=["experiment", "job"], right_on=["set", "job"], validate="one_to_one")
    assert len(merged) == 881
    assert (merged.params_nonembedding_x == merged.params_nonembedding_y).all()
    assert (merged.params_total_x == merged.params_total_y).all()
    assert ((merged.valid_ppl_x - merged.valid_ppl_y).abs() < 1e-9).all()
    # the CSV joins per-layer lists with '|'; the specs must carry the same genes
    for _, row in merged.iterrows():
        d = json.loads(row.spec)
        assert d["n_layer"] == row.n_layer and d["d_model"] == row.d_model
        for gene in ("n_head", "d_inner"):
            listed = [int(v) for v in str(row[gene]).split("|")]
            if len(listed) == 1:  # homogeneous set: one value for every layer
                listed *= row.n_layer
            assert d[gene] == listed
        assert d["div_val"] == row.div_val


def test_pareto_sets_carry_latency_and_memory(table):
    pareto = table[table.kind == "pareto"]
    assert len(pareto) == 45 + 38 + 39 + 39 + 35 + 40
    assert pareto.latency_ms.notna().all() and (pareto.latency_ms > 0).all()
    assert pareto.memory_mb.notna().all() and (pareto.memory_mb > 0).all()
    assert set(pareto.variant) == {"arm", "corei7", "titanxp"}
    m1 = pareto[(pareto.set == "pareto_GPT2_lm1b_arm") & (pareto.job == "M1")].iloc[0]
    assert m1.latency_ms == pytest.approx(1060.4028015077347)
    assert m1.memory_mb == pytest.approx(125.16920471191406)
    assert m1.ppl == pytest.approx(74.89122303416687)
    assert math.isnan(m1.valid_ppl)


def test_spec_mapping_of_one_config():
    path = ROOT / "random_TransXL_wt103" / "config_0" / "j0" / "model_config.yaml"
    spec = lts_spec_from_model_config(path)
    assert spec.backbone == "transformer_xl"
    assert spec.n_layer == 5 and spec.d_model == 64
    assert spec.n_head == (4, 2, 2, 8, 8)
    assert spec.d_head == (16, 32, 32, 8, 8)  # d_head -1 -> d_model // n_head
    assert spec.d_inner == (710, 1021, 1683, 1053, 1748)
    assert spec.d_embed == 512 and spec.div_val == 2
    assert spec.vocab_size == 267736
    assert spec.cutoffs == (19997, 39997, 199997)  # n_token itself dropped
    assert spec.mem_len == 192 and spec.pre_lnorm is False and spec.tie_weights is True


def test_cutoffs_at_or_above_vocab_are_dropped():
    path = ROOT / "pareto_GPT2_lm1b_arm" / "M1" / "model_config.yaml"
    spec = lts_spec_from_model_config(path)
    assert spec.backbone == "gpt2"
    assert spec.cutoffs == ()  # [59997, 99997, 639997, 50264] with n_token 50264
    assert spec.d_embed == spec.d_model == 512  # d_embed -1
    assert spec.max_seq_len == 32  # tgt_len


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="backbone"):
        lts_spec_from_model_config({"n_layer": 2}, None)
    with pytest.raises(ValueError, match="n_token"):
        lts_spec_from_model_config({"n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 128}, "gpt2")
    with pytest.raises(ValueError, match="n_head"):
        lts_spec_from_model_config(
            {"n_layer": 2, "d_model": 64, "n_head": [3, 2], "d_inner": 128, "n_token": 100}, "gpt2"
        )
    with pytest.raises(ValueError, match="set"):
        backbone_of_set("nonsense")


def test_iter_one_set_only():
    rows = list(iter_lts_archs(sets=["random_TransXL_wt103_homogeneous"]))
    assert len(rows) == 99
    for r in rows:
        assert len(set(r.spec.n_head)) == 1 and len(set(r.spec.d_inner)) == 1
    assert all(not math.isnan(r.n_nonemb_param) for r in rows)
