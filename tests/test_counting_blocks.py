"""Analytic counts for merino / par / bert against the instantiated models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.par import Par
from paretolm.core.counting import count
from paretolm.core.spaces import load_space
from paretolm.models import build_model

SPACES = Path(__file__).resolve().parents[1] / "config" / "spaces"
DECODER_PREFIXES = {"merino": ("blocks.", "ln_f."), "par": ("sublayers.", "ln_f."), "bert": ("layers.",)}


def meta_model(spec: ArchSpec) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(spec)


def model_counts(model: torch.nn.Module, backbone: str) -> tuple[int, int]:
    """(unique parameters, parameters under the decoder modules)."""
    total = sum(p.numel() for p in model.parameters())
    decoder = sum(p.numel() for n, p in model.named_parameters() if n.startswith(DECODER_PREFIXES[backbone]))
    return total, decoder


def measured_flops(model: torch.nn.Module, seq_len: int) -> int:
    # On the meta device SDPA decomposes into matmuls that FlopCounterMode sees (the CPU fused
    # kernel is not registered with the counter and would count as zero).
    with torch.device("meta"):
        ids = torch.zeros(1, seq_len, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids)
    return counter.get_total_flops()


@pytest.mark.parametrize("space_name, n", [("merino", 150), ("par", 150), ("speedlimit_bert", 150)])
def test_counts_equal_model_parameters_over_random_specs(space_name: str, n: int) -> None:
    space = load_space(space_name, SPACES)
    specs = space.sample(n, seed=11)
    # half of them with an untied head, which changes the embedding side only
    specs = [s if i % 2 else s.with_(tie_weights=False) for i, s in enumerate(specs)]
    for spec in specs:
        c = count(spec)
        total, decoder = model_counts(meta_model(spec), spec.backbone)
        assert (c.total_params, c.decoder_params) == (total, decoder), spec.to_json()
        assert c.embedding_params == total - decoder


@pytest.mark.parametrize("space_name", ["merino", "par", "speedlimit_bert"])
def test_flops_match_flop_counter(space_name: str) -> None:
    space = load_space(space_name, SPACES)
    for i, spec in enumerate(space.sample(12, seed=3)):
        seq_len = (32, 64, 128)[i % 3]
        if i % 4 == 0:
            spec = spec.with_(tie_weights=False)
        expected = measured_flops(meta_model(spec), seq_len)
        got = count(spec, seq_len).flops
        assert abs(got - expected) <= 0.01 * expected, (spec.to_json(), got, expected)


def test_bert_count_matches_transformers_bert_for_masked_lm() -> None:
    """An independent implementation: BERT-base with an MLM head has 109,514,298 parameters."""
    from transformers import BertConfig, BertForMaskedLM

    for e, h, n_head, f in [(12, 768, 12, 3072), (3, 240, 4, 512), (1, 120, 2, 128)]:
        cfg = BertConfig(num_hidden_layers=e, hidden_size=h, num_attention_heads=n_head, intermediate_size=f)
        with torch.device("meta"):
            hf = BertForMaskedLM(cfg)
        spec = ArchSpec(
            backbone="bert",
            n_layer=e,
            d_model=h,
            n_head=n_head,
            d_inner=f,
            vocab_size=cfg.vocab_size,
            max_seq_len=cfg.max_position_embeddings,
        )
        hf_total = sum(p.numel() for p in hf.parameters())
        hf_encoder = sum(p.numel() for p in hf.bert.encoder.parameters())
        assert count(spec).total_params == hf_total
        assert count(spec).decoder_params == hf_encoder
    base = ArchSpec(
        backbone="bert", n_layer=12, d_model=768, n_head=12, d_inner=3072, vocab_size=30522, max_seq_len=512
    )
    assert count(base).total_params == 109_514_298


def test_merino_depth_costs_flops_but_not_parameters() -> None:
    def spec(depth: int) -> ArchSpec:
        return ArchSpec.from_dict(
            {
                "backbone": "merino",
                "blocks": [
                    {"d_model": 128, "ffn_ratio": 2.0, "n_layer": 1},
                    {"d_model": 256, "ffn_ratio": 3.0, "n_layer": depth},
                ],
            }
        )

    shallow, deep = count(spec(1), 64), count(spec(3), 64)
    assert deep.total_params == shallow.total_params
    assert deep.decoder_params == shallow.decoder_params
    d, di, t = 256, 768, 64
    one_layer = 8 * t * d * d + 4 * t * t * d + 4 * t * d * di
    assert deep.flops - shallow.flops == 2 * one_layer


def test_merino_hand_count() -> None:
    """Widths 64 -> 128 with a tied head, written out term by term."""
    spec = ArchSpec.from_dict(
        {
            "backbone": "merino",
            "vocab_size": 100,
            "max_seq_len": 16,
            "blocks": [
                {"d_model": 64, "ffn_ratio": 1.5, "n_layer": 2},
                {"d_model": 128, "ffn_ratio": 1.0, "n_layer": 1},
            ],
        }
    )

    def layer(d: int, di: int) -> int:
        return (d * 3 * d + 3 * d) + (d * d + d) + (d * di + di) + (di * d + d) + 4 * d

    decoder = layer(64, 96) + (64 * 128 + 128) + layer(128, 128) + 2 * 128
    embedding = 100 * 64 + 16 * 64 + 128 * 64  # token, positions, projection back to E_1
    c = count(spec)
    assert (c.decoder_params, c.embedding_params, c.total_params) == (decoder, embedding, decoder + embedding)
    untied = count(spec.with_(tie_weights=False))
    assert untied.decoder_params == decoder
    assert untied.embedding_params == 100 * 64 + 16 * 64 + 128 * 100


def test_par_identity_is_free_and_sublayer_flops_add_up() -> None:
    base = dict(backbone="par", d_model=64, n_head=4, d_inner=256, vocab_size=500, max_seq_len=32)
    plain, padded = count(ArchSpec(layers="sff", **base), 32), count(ArchSpec(layers="isifif", **base), 32)
    assert plain == padded
    s, f, i = Par.sublayer_flops(64, 4, 256, 32)
    assert i == 0
    lm_head = 2 * 32 * 64 * 500
    assert count(ArchSpec(layers="ssf", **base), 32).flops == 2 * s + f + lm_head
    assert count(ArchSpec(layers="(sfff)x6 (f)x8", **base), 32).flops == 6 * s + 26 * f + lm_head
