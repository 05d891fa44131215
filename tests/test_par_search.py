"""PAR's Gumbel-softmax search on real text, and PAR's design rules."""

from __future__ import annotations

import pytest
import torch
from conftest import data_path

from paretolm.core.arch import ArchSpec
from paretolm.models.par import token_batches
from paretolm.search.methods.par import par_design_rules
from paretolm.search.methods.par.search import gumbel_par_search

SMALL = dict(n_sublayer=6, d_model=32, n_head=2, d_inner=64, vocab_size=256, max_seq_len=32)


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    text = data_path("corpora/tinyshakespeare/input.txt")
    return torch.tensor(list(text.read_bytes()[:200_000]), dtype=torch.long)  # byte-level


def search(tokens: torch.Tensor, seed: int, steps: int = 30, **kw):
    return gumbel_par_search(token_batches(tokens, 8, 32, seed=seed), steps=steps, seed=seed, **SMALL, **kw)


@pytest.fixture(scope="module")
def result(tokens: torch.Tensor):
    return search(tokens, seed=0)


def test_search_returns_a_valid_spec_and_probabilities(result) -> None:
    spec = result.spec
    assert isinstance(spec, ArchSpec) and spec.backbone == "par"
    assert len(spec.layers) == 6 and set(spec.layers) <= set("sfi")
    assert ArchSpec.from_json(spec.to_json()) == spec
    probs = torch.tensor(result.probs)
    assert probs.shape == (6, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(6))
    assert "".join("sfi"[k] for k in probs.argmax(-1)) == spec.layers
    assert (spec.d_model, spec.n_head, spec.d_inner, spec.vocab_size) == (32, 2, 64, 256)


def test_search_trains_and_moves_the_architecture_logits(result) -> None:
    moved = (torch.tensor(result.final_logits) - torch.tensor(result.initial_logits)).abs()
    assert moved.max() > 0.1
    first = sum(h["weight_loss"] for h in result.history[:5]) / 5
    last = sum(h["weight_loss"] for h in result.history[-5:]) / 5
    assert last < first - 0.5  # the supernet weights really learn the byte stream
    taus = [h["tau"] for h in result.history]
    assert taus[0] == pytest.approx(5.0) and taus[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(taus, taus[1:], strict=False))


def test_search_is_deterministic_and_seed_dependent(tokens: torch.Tensor, result) -> None:
    state = torch.get_rng_state()
    again = search(tokens, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert again.layers == result.layers and again.probs == result.probs
    other = search(tokens, seed=1)
    assert other.probs != result.probs


def test_cost_weight_pushes_towards_cheap_sublayers(tokens: torch.Tensor, result) -> None:
    cheap = search(tokens, seed=0, cost_weight=20.0)
    p_identity = lambda r: sum(row[2] for row in r.probs)  # noqa: E731
    assert p_identity(cheap) > p_identity(result) + 0.5
    assert cheap.layers.count("i") >= result.layers.count("i")


def test_search_rejects_a_short_stream_and_bad_sizes(tokens: torch.Tensor) -> None:
    two = [tokens[:64].view(2, 32)] * 3
    with pytest.raises(ValueError, match="batches"):
        gumbel_par_search(two, steps=2, seed=0, **SMALL)
    with pytest.raises(ValueError, match="n_head"):
        gumbel_par_search(two, steps=1, seed=0, **{**SMALL, "n_head": 5})
    with pytest.raises(ValueError, match="steps"):
        gumbel_par_search(two, steps=0, seed=0, **SMALL)


def test_token_batches_are_seeded_windows(tokens: torch.Tensor) -> None:
    a, b = token_batches(tokens, 4, 16, seed=3), token_batches(tokens, 4, 16, seed=3)
    x, y = next(a), next(b)
    assert x.shape == (4, 16) and torch.equal(x, y)
    assert not torch.equal(next(a), x)
    with pytest.raises(ValueError, match="tokens"):
        next(token_batches(tokens[:10], 2, 16, seed=0))


def rules(layers: str) -> list[str]:
    return par_design_rules(ArchSpec(backbone="par", layers=layers, d_model=64, n_head=4, d_inner=128))


def test_par_base_model_follows_the_rules() -> None:
    assert rules("(sfff)x6 (f)x8") == []
    assert rules("(sfff)x6 (f)x8 (i)x4") == []  # identity adds no depth
    assert rules("(sfffff)x4 (f)x12") == []  # PAR's 1:5 ratio


def test_interleaved_transformer_breaks_span_and_share() -> None:
    broken = rules("(sf)x16")
    assert {b.split(":")[0] for b in broken} == {"span", "share"}
    assert "[22, 24, 26, 28, 30]" in broken[0]  # attention indices past 2/3 of 32 sub-layers


def test_other_rule_breaks() -> None:
    assert [b.split(":")[0] for b in rules("f" * 12)] == ["share", "interleaving"]
    assert "no self-attention" in rules("f" * 12)[0]
    late = rules("sfffsfff" + "f" * 6 + "sfff")  # a long attention-free stretch, then late attention
    assert [b.split(":")[0] for b in late] == ["span", "interleaving"]
    assert [b.split(":")[0] for b in rules("ffffffssfsffff")] == ["interleaving"]  # 6 f before any s
    assert rules("(ssff)x3 (f)x6") == []  # 6 of 18: exactly the 1/3 bound
    assert [b.split(":")[0] for b in rules("(sssf)x3 (f)x9")] == ["share"]  # 9 of 21
    with pytest.raises(ValueError, match="backbone"):
        par_design_rules(ArchSpec(backbone="bert", n_layer=1, d_model=8, n_head=2, d_inner=8))
