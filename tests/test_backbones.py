"""Every registered backbone, through its own example spec: validation, counts, model, views.

Parametrized over ``BACKBONES``, so a backbone added to the registry is tested here without
writing a test for it.
"""

from __future__ import annotations

import json

import pytest
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.core.counting import count
from paretolm.models import build_model
from paretolm.models.flops import measured_flops

NAMES = BACKBONES.names()


def example(name: str) -> ArchSpec:
    return ArchSpec.from_dict(BACKBONES.get(name).example)


def test_the_builtin_backbones_are_registered() -> None:
    assert {"gpt2", "opt", "transformer_xl", "merino", "par", "bert"} <= set(NAMES)
    with pytest.raises(ValueError, match=r"^backbone: unknown backbone 'gpt3' \(known: .*gpt2"):
        ArchSpec("gpt3", n_layer=1)


@pytest.mark.parametrize("name", NAMES)
def test_example_round_trips_and_rejects_foreign_genes(name: str) -> None:
    spec = example(name)
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["backbone"] == name
    assert set(json.loads(spec.to_json())) == {
        "backbone",
        "vocab_size",
        "max_seq_len",
        "tie_weights",
        *BACKBONES.get(name).genes,
    }
    with pytest.raises(ValueError, match="^colour: not a gene"):
        ArchSpec.from_dict({**BACKBONES.get(name).example, "colour": "red"})


@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_the_built_model(name: str) -> None:
    spec = example(name)
    torch.manual_seed(0)
    model = build_model(spec)
    c = count(spec, 16)
    assert c.total_params == sum(p.numel() for p in model.parameters())
    assert c.decoder_params + c.embedding_params == c.total_params
    assert 0 < c.decoder_params < c.total_params
    ids = torch.randint(0, spec.vocab_size, (1, 16))
    assert c.flops == measured_flops(model.eval(), ids)


@pytest.mark.parametrize("name", NAMES)
def test_model_forward_and_loss(name: str) -> None:
    spec = example(name)
    model = build_model(spec)
    ids = torch.randint(0, spec.vocab_size, (2, 12))
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 12, spec.vocab_size)
    assert torch.isfinite(out.loss) and out.loss.item() > 0


@pytest.mark.parametrize("name", NAMES)
def test_blocks_match_the_model(name: str) -> None:
    """The block descriptor names exactly the attention and feed-forward weights the model has,
    which the data proxies score: the same parts, the same number of weights in each."""
    from paretolm.proxies.zero_cost import scored_weights

    spec = example(name)
    blocks = spec.block_view()
    assert spec.num_layers == sum(b.times for b in blocks) > 0
    scored = scored_weights(build_model(spec))
    assert {s.kind for s in scored} == {m.part for b in blocks for m in b.matrices()}
    # each block is one set of weights (a shared MeRino layer once, however often applied)
    for part in ("attn", "ffn"):
        weights = sum(s.weight.numel() for s in scored if s.kind == part)
        assert weights == sum(m.d_in * m.d_out for b in blocks for m in b.matrices() if m.part == part)


@pytest.mark.parametrize("name", [n for n in NAMES if BACKBONES.get(n).causal])
def test_causal_backbones_round_trip_through_hugging_face(name: str, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from paretolm.models.hf import from_spec

    model = from_spec(example(name)).eval()
    ids = torch.randint(0, example(name).vocab_size, (1, 10))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(model(ids).logits, loaded(ids).logits)
