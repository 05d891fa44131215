"""Cached decoding: prefill plus one token at a time through the decoding cache gives the logits of
one full forward, for every causal backbone (parametrized over ``BACKBONES``)."""

from __future__ import annotations

import pytest
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.models import build_model

CAUSAL = [name for name in BACKBONES.names() if BACKBONES.get(name).causal]


def example(name: str, **genes) -> ArchSpec:
    return ArchSpec.from_dict({**BACKBONES.get(name).example, **genes})


def cached_logits(model: torch.nn.Module, ids: torch.Tensor, prefill: int) -> torch.Tensor:
    """Logits of ``ids``: the first ``prefill`` tokens in one call, then one token per call."""
    out = model(ids[:, :prefill], use_cache=True)
    logits, past = [out.logits], out.past
    for i in range(prefill, ids.size(1)):
        out = model(ids[:, i : i + 1], past=past, use_cache=True)
        logits.append(out.logits)
        past = out.past
    return torch.cat(logits, dim=1)


def variants() -> list[tuple[str, dict]]:
    """Every causal backbone's example, plus adaptive-softmax / untied / memoryless variants."""
    out = [(name, {}) for name in CAUSAL]
    if "gpt2" in CAUSAL:
        out += [("gpt2", {"div_val": 1}), ("gpt2", {"tie_weights": False})]
    if "transformer_xl" in CAUSAL:
        out += [("transformer_xl", {"mem_len": 0}), ("transformer_xl", {"div_val": 1, "pre_lnorm": True})]
    return out


@pytest.mark.parametrize(("name", "genes"), variants(), ids=lambda v: str(v))
def test_cached_decoding_matches_full_forward(name: str, genes: dict) -> None:
    spec = example(name, **genes)
    if name == "transformer_xl" and spec.mem_len:
        spec = spec.with_(mem_len=32)  # the memory spans the whole test sequence
    torch.manual_seed(0)
    model = build_model(spec).eval()
    ids = torch.randint(0, spec.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(ids).logits
        for prefill in (1, 5):
            torch.testing.assert_close(cached_logits(model, ids, prefill), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CAUSAL)
def test_plain_forward_returns_no_cache_and_cache_grows(name: str) -> None:
    spec = example(name)
    model = build_model(spec).eval()
    ids = torch.randint(0, spec.vocab_size, (1, 6))
    with torch.inference_mode():
        assert model(ids).past is None
        first = model(ids, use_cache=True).past
        second = model(ids[:, :1], past=first, use_cache=True).past
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
        assert b.numel() > a.numel()


def test_cache_counts_every_application_of_a_shared_merino_layer() -> None:
    spec = example("merino")
    with torch.inference_mode():
        past = build_model(spec).eval()(torch.zeros(1, 3, dtype=torch.long), use_cache=True).past
    assert len(past) == sum(b.n_layer for b in spec.blocks)


def test_cache_respects_max_seq_len() -> None:
    spec = example("gpt2")
    model = build_model(spec).eval()
    with torch.inference_mode():
        past = model(torch.zeros(1, spec.max_seq_len, dtype=torch.long), use_cache=True).past
        with pytest.raises(ValueError, match="exceed max_seq_len"):
            model(torch.zeros(1, 1, dtype=torch.long), past=past, use_cache=True)
