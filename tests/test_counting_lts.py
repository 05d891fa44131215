"""Analytic counts of the LTS backbones: exact against the models, the papers and LTS's own logs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import needs_data

from paretolm.analysis.lts_archai import iter_lts_archs
from paretolm.core.arch import ArchSpec
from paretolm.core.counting import breakdown, count
from paretolm.core.spaces import load_space
from paretolm.models import build_model
from paretolm.models.flops import measured_flops

SPACES = Path(__file__).resolve().parents[1] / "config" / "spaces"
PROPERTY_SPACES = {
    "lts_gpt2": 100,
    "lts_transformer_xl": 90,
    "lts_transformer_xl_homogeneous": 50,
    "opt_350m": 60,
    "gpt2_cpu_small": 100,
}


def model_counts(spec: ArchSpec) -> tuple[int, int]:
    with torch.device("meta"):
        model = build_model(spec)
    total = sum(p.numel() for p in model.parameters())
    decoder = sum(p.numel() for p in model.decoder_parameters())
    return decoder, total


@pytest.mark.parametrize("space", sorted(PROPERTY_SPACES))
def test_counts_equal_the_model_for_random_specs(space):
    """Hundreds of random specs (400 in all): decoder and total parameters exact to the parameter."""
    specs = load_space(SPACES / f"{space}.yaml").sample(PROPERTY_SPACES[space], seed=7)
    for spec in specs:
        c = count(spec)
        decoder, total = model_counts(spec)
        assert (c.decoder_params, c.total_params) == (decoder, total), spec.to_json()
        assert c.embedding_params == total - decoder


EMBEDDING_VARIANTS = [
    {},
    {"div_val": 2, "cutoffs": [100, 400]},
    {"div_val": 4, "cutoffs": [100, 400], "tie_weights": False},
    {"d_embed": 96, "tie_weights": False},
    {"div_val": 1, "cutoffs": [300], "d_embed": 48},
]


@pytest.mark.parametrize(
    ("backbone", "extra"),
    [("opt", {}), ("opt", {"tie_weights": False})]
    + [(b, e) for b in ("gpt2", "transformer_xl") for e in EMBEDDING_VARIANTS],
)
def test_counts_of_embedding_variants(backbone, extra):
    if backbone == "gpt2" and extra.get("div_val", 1) == 1:
        extra = {k: v for k, v in extra.items() if k != "cutoffs"}
    spec = ArchSpec.from_dict(
        {
            "backbone": backbone,
            "n_layer": 3,
            "d_model": 64,
            "n_head": [2, 4, 8],
            "d_inner": [128, 192, 64],
            "vocab_size": 1000,
            "max_seq_len": 64,
            **extra,
        }
    )
    decoder, total = model_counts(spec)
    c = count(spec)
    assert (c.decoder_params, c.total_params) == (decoder, total)


SMALL_FLOP_SPECS = [
    {"backbone": "gpt2", "n_layer": 2, "d_model": 64, "n_head": [2, 4], "d_inner": [128, 256]},
    {
        "backbone": "gpt2",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "div_val": 2,
        "cutoffs": [100, 400],
        "d_embed": 128,
    },
    {
        "backbone": "gpt2",
        "n_layer": 1,
        "d_model": 128,
        "n_head": 8,
        "d_inner": 384,
        "d_embed": 64,
        "tie_weights": False,
    },
    {"backbone": "opt", "n_layer": 3, "d_model": 64, "n_head": [2, 4, 8], "d_inner": [64, 128, 320]},
    {
        "backbone": "transformer_xl",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "cutoffs": [100, 400],
    },
    {
        "backbone": "transformer_xl",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "cutoffs": [100, 400],
        "div_val": 4,
        "d_head": [16, 24],
        "pre_lnorm": True,
    },
    {
        "backbone": "transformer_xl",
        "n_layer": 1,
        "d_model": 64,
        "n_head": 2,
        "d_inner": 128,
        "cutoffs": [],
        "d_embed": 32,
    },
]


@pytest.mark.parametrize("seq_len", [1, 24, 64])
@pytest.mark.parametrize("raw", SMALL_FLOP_SPECS, ids=range(len(SMALL_FLOP_SPECS)))
def test_flops_match_flop_counter_mode(raw, seq_len):
    spec = ArchSpec.from_dict({"vocab_size": 1000, "max_seq_len": 64, **raw})
    model = build_model(spec).eval()
    x = torch.randint(0, 1000, (1, seq_len))
    c = count(spec, seq_len)
    measured = measured_flops(model, x)
    assert abs(c.flops - measured) <= 0.01 * measured
    assert c.flops == measured  # in fact exact
    # the stock counter on CPU leaves SDPA out; the breakdown names that part
    assert measured_flops(model, x, count_sdpa=False) == c.flops - breakdown(spec, seq_len)["sdpa_flops"]


def test_paper_figures():
    gpt2 = ArchSpec.from_dict(
        {
            "backbone": "gpt2",
            "n_layer": 3,
            "d_model": 256,
            "n_head": [2, 2, 2],
            "d_inner": [3072, 3776, 3904],
            "div_val": 1,
        }
    )
    assert round(count(gpt2).decoder_params / 1e6, 1) == 6.3
    assert count(gpt2).decoder_params == 6_309_632
    txl = ArchSpec.from_dict(
        {"backbone": "transformer_xl", "n_layer": 2, "d_model": 512, "n_head": [2, 2], "d_inner": [1216, 1280]}
    )
    assert round(count(txl).decoder_params / 1e6, 1) == 5.2
    opt = ArchSpec.from_dict(
        {
            "backbone": "opt",
            "n_layer": 24,
            "d_model": 1024,
            "n_head": 16,
            "d_inner": 4096,
            "vocab_size": 50272,
            "max_seq_len": 2050,
        }
    )
    c = count(opt)
    assert round(c.decoder_params / 1e6, 1) == 302.3
    # the paper's 304.4 M adds the 2050 x 1024 learned positions
    assert round((c.decoder_params + 2050 * 1024) / 1e6, 1) == 304.4
    assert breakdown(opt, 192)["position_params"] == 2050 * 1024


def test_counts_depend_on_seq_len_only_through_flops():
    spec = load_space(SPACES / "lts_gpt2.yaml").sample(1, seed=3)[0]
    a, b = count(spec, 64), count(spec, 128)
    assert (a.decoder_params, a.total_params) == (b.decoder_params, b.total_params)
    assert b.flops > 2 * a.flops - 1  # attention grows quadratically
    with pytest.raises(ValueError, match="seq_len"):
        count(spec, 0)


def test_bad_specs_name_the_field():
    with pytest.raises(ValueError, match=r"n_head\[1\]"):
        ArchSpec.from_dict({"backbone": "gpt2", "n_layer": 2, "d_model": 64, "n_head": [2, 3], "d_inner": 128})
    with pytest.raises(ValueError, match="d_inner"):
        ArchSpec.from_dict({"backbone": "transformer_xl", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": [128]})
    with pytest.raises(ValueError, match="div_val"):
        ArchSpec.from_dict({"backbone": "opt", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 128, "div_val": 2})


# -- LTS's own counts -------------------------------------------------------------------------------
needs_lts = needs_data("ground-truth/lts-archai")


@pytest.fixture(scope="module")
def lts_archs():
    return list(iter_lts_archs())


@needs_lts
def test_decoder_params_agree_with_lts_nonembedding(lts_archs):
    """Every trained LTS architecture (881 random with perplexity + 4 without, 236 Pareto).

    Exact for all sets but ``random_GPT2_lm1b``, whose ``params_summary`` counts each layer's
    attention ``d_model**2 - 2 * d_model`` higher and leaves the final LayerNorm out (the Pareto
    GPT-2 lm1b models, same code base, agree exactly): the relation is tested exactly.
    """
    checked = 0
    for a in lts_archs:
        ours = count(a.spec).decoder_params
        d, n = a.spec.d_model, a.spec.n_layer
        if a.set == "random_GPT2_lm1b":
            assert a.params_nonembedding == ours + n * (d * d - 2 * d) - 2 * d, a.job
            assert a.params_attn == breakdown(a.spec, 192)["attn_params"] + n * (d * d - 2 * d)
        else:
            assert a.params_nonembedding == ours, (a.set, a.job)
            b = breakdown(a.spec, 192)
            assert a.params_ffn == b["ffn_params"]
            assert a.params_attn == b["attn_params"]  # r biases included for Transformer-XL
        checked += 1
    assert checked == 1121
    assert sum(1 for a in lts_archs if a.kind == "random" and not math.isnan(a.valid_ppl)) == 881


@needs_lts
def test_transformer_xl_model_config_count_leaves_out_r_biases(lts_archs):
    """LTS's training script logs ``n_nonemb_param`` = parameters of ``model.layers``; its per-layer
    ``r_w_bias_i``/``r_r_bias_i`` live on the model object, so that count lacks them:
    ``n_nonemb_param == decoder_params - 2 * sum(n_head * d_head)``. Two random_TransXL_lm1b jobs
    logged the count with the biases (``== decoder_params``)."""
    with_biases = set()
    n = 0
    for a in lts_archs:
        if a.backbone != "transformer_xl" or math.isnan(a.n_nonemb_param):
            continue
        ours = count(a.spec).decoder_params
        r_biases = 2 * sum(h * dh for h, dh in zip(a.spec.n_head, a.spec.d_head, strict=True))
        assert breakdown(a.spec, 192)["rbias_params"] == r_biases
        if a.n_nonemb_param == ours:
            with_biases.add(f"{a.set}/{a.job}")
        else:
            assert a.n_nonemb_param == ours - r_biases, a.job
        n += 1
    assert n == 485
    assert with_biases == {"random_TransXL_lm1b/config_0_j6", "random_TransXL_lm1b/config_2_j9"}
    # the example from random_TransXL_wt103 config_0_j0: 905,735 logged, 906,375 in params_summary
    a = next(a for a in lts_archs if a.set == "random_TransXL_wt103" and a.job == "config_0_j0")
    assert (a.n_nonemb_param, a.params_nonembedding, count(a.spec).decoder_params) == (905735, 906375, 906375)


@needs_lts
def test_lts_architectures_build_with_the_counted_sizes(lts_archs):
    """A sample of real LTS configs (word-level vocabularies up to 793k) built on the meta device."""
    for a in lts_archs[::40]:
        decoder, total = model_counts(a.spec)
        c = count(a.spec)
        assert (c.decoder_params, c.total_params) == (decoder, total), (a.set, a.job)
