"""The LTS backbones (gpt2, opt, transformer_xl) and the adaptive embedding / softmax."""

from __future__ import annotations

import math

import pytest
import torch

from paretolm.core.arch import ArchSpec
from paretolm.models import build_model
from paretolm.models.adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax

V = 1000
BASE = {"n_layer": 2, "d_model": 64, "n_head": [2, 4], "d_inner": [128, 256], "vocab_size": V, "max_seq_len": 32}
VARIANTS = [
    {"backbone": "gpt2"},
    {"backbone": "gpt2", "div_val": 2, "cutoffs": [100, 400]},
    {"backbone": "gpt2", "div_val": 4, "cutoffs": [100, 400], "tie_weights": False},
    {"backbone": "gpt2", "d_embed": 128},
    {"backbone": "opt"},
    {"backbone": "transformer_xl", "cutoffs": [100, 400], "mem_len": 8},
    {"backbone": "transformer_xl", "div_val": 2, "cutoffs": [100, 400], "pre_lnorm": True},
    {"backbone": "transformer_xl", "div_val": 1, "cutoffs": [], "d_head": [8, 40], "tie_weights": False},
]


def spec_of(extra: dict) -> ArchSpec:
    return ArchSpec.from_dict({**BASE, **extra})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("extra", VARIANTS, ids=lambda e: "-".join(f"{k}{v}" for k, v in e.items()))
def test_forward_shapes_and_initial_loss(extra):
    spec = spec_of(extra)
    model = build_model(spec)
    x = torch.randint(0, V, (2, 24))
    out = model(x, labels=x)
    assert out.logits.shape == (2, 24, V)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    # GPT-2 init (and log(size) cluster biases) start near the uniform distribution
    assert abs(out.loss.item() - math.log(V)) < 0.15
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


ADAPTIVE = [v for v in VARIANTS if v.get("div_val", 1) > 1 or v["backbone"] == "transformer_xl"]


@pytest.mark.parametrize("extra", ADAPTIVE)
def test_adaptive_logits_are_normalised_log_probs(extra):
    model = build_model(spec_of(extra)).eval()
    x = torch.randint(0, V, (1, 12))
    out = model(x, labels=x)
    probs = out.logits.double().exp().sum(-1)
    assert torch.allclose(probs, torch.ones_like(probs), atol=1e-4)
    # cross-entropy on log-probabilities is the NLL of the labels
    nll = -out.logits[0, :-1].gather(-1, x[0, 1:, None]).mean()
    assert torch.allclose(nll, out.loss, atol=1e-5)


def test_tied_weights_share_storage_and_are_counted_once():
    model = build_model(spec_of({"backbone": "gpt2", "div_val": 2, "cutoffs": [100, 400]}))
    names = dict(model.named_parameters())
    assert not any(n.startswith("head.out_weights") for n in names)  # read from the embedding
    untied = build_model(spec_of({"backbone": "gpt2", "div_val": 2, "cutoffs": [100, 400], "tie_weights": False}))
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    emb = sum(p.numel() for p in model.wte.parameters())
    assert n_untied - n_tied == emb
    # a gradient through the head reaches the embedding table it is tied to
    model.zero_grad()
    model.head(torch.randn(1, 8, 64)).sum().backward()
    assert model.wte.emb_layers[0].weight.grad is not None


def test_causal_masking():
    for extra in (VARIANTS[0], VARIANTS[5]):
        model = build_model(spec_of(extra)).eval()
        x = torch.randint(0, V, (1, 16))
        y = x.clone()
        y[0, 10:] = 7
        a, b = model(x).logits, model(y).logits
        assert torch.allclose(a[0, :10], b[0, :10], atol=1e-5)
        assert not torch.allclose(a[0, 10:], b[0, 10:], atol=1e-3)


@pytest.mark.parametrize("pre_lnorm", [False, True])
def test_transformer_xl_memory_continues_the_sequence(pre_lnorm):
    """With memory covering the first segment, the second segment sees exactly the full context."""
    spec = spec_of({"backbone": "transformer_xl", "cutoffs": [100, 400], "mem_len": 16, "pre_lnorm": pre_lnorm})
    model = build_model(spec).eval()
    x = torch.randint(0, V, (2, 16))
    full = model(x).logits
    first = model(x[:, :8])
    second = model(x[:, 8:], mems=first.mems)
    assert torch.allclose(full[:, 8:], second.logits, atol=1e-5)
    assert len(second.mems) == 2 and all(m.shape == (2, 16, 64) for m in second.mems)
    assert not any(m.requires_grad for m in second.mems)
    # without memory the second segment sees less context: different predictions
    alone = model(x[:, 8:]).logits
    assert not torch.allclose(alone, second.logits, atol=1e-3)


def test_transformer_xl_memory_is_truncated_to_mem_len():
    model = build_model(spec_of({"backbone": "transformer_xl", "cutoffs": [100, 400], "mem_len": 5})).eval()
    out = model(torch.randint(0, V, (1, 12)))
    assert all(m.shape == (1, 5, 64) for m in out.mems)
    model0 = build_model(spec_of({"backbone": "transformer_xl", "cutoffs": [100, 400], "mem_len": 0})).eval()
    assert model0(torch.randint(0, V, (1, 12))).mems is None
    with pytest.raises(ValueError, match="mems"):
        model(torch.randint(0, V, (1, 4)), mems=out.mems[:1])


def test_gpt2_rejects_too_long_input():
    model = build_model(spec_of({"backbone": "gpt2"}))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.randint(0, V, (1, 33)))


def test_opt_uses_relu_and_gpt2_gelu():
    assert build_model(spec_of({"backbone": "opt"})).layers[0].mlp.act.__class__.__name__ == "ReLU"
    assert build_model(spec_of({"backbone": "gpt2"})).layers[0].mlp.act.__class__.__name__ == "GELU"


def test_dropout_settings_reach_the_layers():
    model = build_model(spec_of({"backbone": "transformer_xl", "cutoffs": [100]}), dropout=0.3, attn_dropout=0.2)
    assert model.layers[0].attn.attn_dropout == 0.2 and model.drop.p == 0.3
    g = build_model(spec_of({"backbone": "gpt2"}), dropout=0.1, attn_dropout=0.05)
    assert g.layers[1].attn.attn_dropout == 0.05 and g.drop.p == 0.1


def test_adaptive_embedding_clusters_and_widths():
    emb = AdaptiveEmbedding(1000, 64, 32, cutoffs=(100, 400), div_val=2)
    assert [layer.weight.shape for layer in emb.emb_layers] == [(100, 64), (300, 32), (600, 16)]
    assert [p.shape for p in emb.emb_projs] == [(32, 64), (32, 32), (32, 16)]
    ids = torch.tensor([[0, 99, 100, 399, 400, 999]])
    out = emb(ids)
    expect = torch.stack(
        [
            emb.emb_layers[0].weight[0] @ emb.emb_projs[0].T,
            emb.emb_layers[0].weight[99] @ emb.emb_projs[0].T,
            emb.emb_layers[1].weight[0] @ emb.emb_projs[1].T,
            emb.emb_layers[1].weight[299] @ emb.emb_projs[1].T,
            emb.emb_layers[2].weight[0] @ emb.emb_projs[2].T,
            emb.emb_layers[2].weight[599] @ emb.emb_projs[2].T,
        ]
    )
    assert torch.allclose(out[0], expect, atol=1e-6)
    with pytest.raises(ValueError, match="tie_weights"):
        AdaptiveLogSoftmax(1000, 64, 32, cutoffs=(100,), div_val=2, embedding=emb)
