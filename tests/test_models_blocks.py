"""MeRino, PAR and BERT models: sharing, causality, losses and masking on real text."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import data_path

from paretolm.core.arch import ArchSpec
from paretolm.models import build_model
from paretolm.models.bert import mask_tokens

SHAKESPEARE = "corpora/tinyshakespeare/input.txt"


def merino(blocks: list[tuple[int, float, int]], **kw) -> ArchSpec:
    rows = [{"d_model": e, "ffn_ratio": r, "n_layer": n} for e, r, n in blocks]
    return ArchSpec.from_dict({"backbone": "merino", "d_head": 32, "max_seq_len": 64, **kw, "blocks": rows})


def par(layers: str, **kw) -> ArchSpec:
    return ArchSpec(backbone="par", layers=layers, d_model=64, n_head=4, d_inner=128, max_seq_len=64, **kw)


def bert(**kw) -> ArchSpec:
    return ArchSpec(backbone="bert", n_layer=2, d_model=48, n_head=4, d_inner=96, max_seq_len=64, **kw)


@pytest.fixture(scope="module")
def gpt2_ids() -> torch.Tensor:
    text, gpt2 = data_path(SHAKESPEARE), data_path("tokenizers/gpt2")
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(str(gpt2 / "vocab.json"), str(gpt2 / "merges.txt"))
    ids = tok.encode(text.read_text()[:20000]).ids
    assert tok.encode("Hello world").ids == [15496, 995]
    return torch.tensor(ids[: 4 * 64]).view(4, 64)


@pytest.fixture(scope="module")
def byte_ids() -> torch.Tensor:
    return torch.tensor(list(data_path(SHAKESPEARE).read_bytes()[:100_000]), dtype=torch.long)


@pytest.mark.parametrize(
    "spec",
    [
        merino([(64, 2.0, 2), (128, 1.5, 3)]),
        par("(sfff)x2 (f)x2"),
        bert(vocab_size=50257),
    ],
    ids=["merino", "par", "bert"],
)
def test_initial_loss_is_about_ln_vocab(spec: ArchSpec, gpt2_ids: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():
        if spec.backbone == "bert":
            inputs, labels = mask_tokens(gpt2_ids, 50256, 50257, torch.Generator().manual_seed(0))
            out = model(inputs, labels=labels)
        else:
            out = model(gpt2_ids, labels=gpt2_ids)
    assert out.logits.shape == (*gpt2_ids.shape, 50257)
    assert abs(out.loss.item() - math.log(50257)) < 0.3


def test_merino_block_shares_one_layer() -> None:
    deep, shallow = merino([(64, 2.0, 3)]), merino([(64, 2.0, 1)])
    torch.manual_seed(0)
    m = build_model(deep)
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in build_model(shallow).parameters())
    layer = m.blocks[0].layer
    assert len(list(m.blocks[0].children())) == 1  # no transition in the first block, one layer module
    calls = []
    layer.register_forward_hook(lambda *_: calls.append(1))
    ids = torch.randint(0, 100, (2, 16))
    out = m(ids, labels=ids)
    assert len(calls) == 3
    out.loss.backward()
    # the shared weights receive the gradient of all three applications
    assert layer.mlp.fc.weight.grad is not None and layer.mlp.fc.weight.grad.abs().sum() > 0


def test_merino_widths_projections_and_tied_head() -> None:
    spec = merino([(64, 1.0, 1), (64, 2.0, 1), (128, 1.5, 2)], vocab_size=300)
    m = build_model(spec)
    assert m.blocks[0].transition is None and m.blocks[1].transition is None
    assert tuple(m.blocks[2].transition.weight.shape) == (128, 64)
    assert m.blocks[2].layer.attn.n_head == 128 // 32
    assert m.blocks[2].layer.mlp.fc.out_features == 192
    assert m.lm_head.weight is m.wte.weight
    assert tuple(m.project_out.weight.shape) == (64, 128)
    untied = build_model(spec.with_(tie_weights=False))
    assert untied.project_out is None and tuple(untied.lm_head.weight.shape) == (300, 128)


@pytest.mark.parametrize("spec", [merino([(32, 2.0, 2), (64, 1.0, 1)]), par("sfisf")], ids=["merino", "par"])
def test_decoders_are_causal(spec: ArchSpec) -> None:
    torch.manual_seed(0)
    m = build_model(spec).eval()
    ids = torch.randint(0, 1000, (1, 20))
    changed = ids.clone()
    changed[0, 15] = (ids[0, 15] + 1) % 1000
    with torch.no_grad():
        a, b = m(ids).logits, m(changed).logits
    assert torch.allclose(a[0, :15], b[0, :15], atol=1e-6)
    assert not torch.allclose(a[0, 15:], b[0, 15:])


def test_par_identity_holds_no_parameters_and_passes_through() -> None:
    m = build_model(par("isif"))
    assert [type(s).__name__ for s in m.sublayers] == [
        "Identity",
        "AttentionSublayer",
        "Identity",
        "FeedForwardSublayer",
    ]
    assert sum(p.numel() for p in m.sublayers[0].parameters()) == 0
    torch.manual_seed(1)
    a = build_model(par("isif")).eval()
    torch.manual_seed(1)
    b = build_model(par("sf")).eval()
    # same parameter shapes in the same order; copy to compare outputs
    b.load_state_dict(
        {
            k.replace("sublayers.1.", "sublayers.0.").replace("sublayers.3.", "sublayers.1."): v
            for k, v in a.state_dict().items()
        }
    )
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        assert torch.allclose(a(ids).logits, b(ids).logits, atol=1e-6)
    assert m.sublayers[3].ffn.act.__class__.__name__ == "ReLU"


def test_bert_is_bidirectional_and_loss_is_masked_cross_entropy() -> None:
    torch.manual_seed(0)
    m = build_model(bert(vocab_size=1000)).eval()
    assert m.decoder.weight is m.word.weight and m.decoder.bias is not None
    ids = torch.randint(0, 1000, (2, 16))
    changed = ids.clone()
    changed[:, 10] = (ids[:, 10] + 1) % 1000
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[1, 7] = ids[0, 3], ids[1, 7]
    with torch.no_grad():
        out, out2 = m(ids, labels=labels), m(changed)
    assert not torch.allclose(out.logits[:, :10], out2.logits[:, :10])  # earlier positions see later ones
    manual = torch.nn.functional.cross_entropy(
        torch.stack([out.logits[0, 3], out.logits[1, 7]]), torch.stack([ids[0, 3], ids[1, 7]])
    )
    assert torch.allclose(out.loss, manual)


def test_bert_padding_mask_hides_padded_keys() -> None:
    torch.manual_seed(0)
    m = build_model(bert(vocab_size=1000)).eval()
    ids = torch.randint(0, 1000, (1, 12))
    other = ids.clone()
    other[0, 8:] = 0  # different padding content
    mask = torch.ones(1, 12, dtype=torch.long)
    mask[0, 8:] = 0
    with torch.no_grad():
        a = m(ids, attention_mask=mask).logits
        b = m(other, attention_mask=mask).logits
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-5)
    with pytest.raises(ValueError, match="attention_mask"):
        m(ids, attention_mask=mask[:, :5])


def test_mask_tokens_follows_80_10_10() -> None:
    vocab, mask_id = 5000, 4999
    ids = torch.randint(0, 4000, (200, 500), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    gen = torch.Generator().manual_seed(1)
    inputs, labels = mask_tokens(ids, mask_id, vocab, gen, special_tokens_mask=special)
    picked = labels != -100
    assert abs(picked.float().mean().item() - 0.15) < 0.005
    assert not picked[:, 0].any()
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(inputs[~picked], ids[~picked])
    n = picked.sum().item()
    masked = (inputs[picked] == mask_id).sum().item() / n
    kept = (inputs[picked] == ids[picked]).sum().item() / n
    assert abs(masked - 0.8) < 0.01
    assert abs(kept - 0.1) < 0.01  # a random draw rarely equals the original in a 5000-token vocabulary
    again = mask_tokens(ids, mask_id, vocab, torch.Generator().manual_seed(1), special_tokens_mask=special)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_tokens(ids, vocab, vocab, torch.Generator())
    with pytest.raises(ValueError, match="p:"):
        mask_tokens(ids, mask_id, vocab, torch.Generator(), p=1.5)


@pytest.mark.parametrize(
    "spec",
    [
        merino([(32, 2.0, 2), (64, 2.0, 1)], vocab_size=256),
        par("(sff)x2", vocab_size=256),
        bert(vocab_size=257),
    ],
    ids=["merino", "par", "bert"],
)
def test_a_few_steps_of_training_lower_the_loss_on_real_text(spec: ArchSpec, byte_ids: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_model(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    batch = torch.stack([byte_ids[s : s + 48] for s in torch.randint(0, 90_000, (8,), generator=gen).tolist()])
    losses = []
    for _ in range(15):
        if spec.backbone == "bert":
            inputs, labels = mask_tokens(batch, 256, 257, torch.Generator().manual_seed(2), p=0.3)
            out = model(inputs, labels=labels)
        else:
            out = model(batch, labels=batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_wrong_spec_and_too_long_input_raise() -> None:
    from paretolm.models.merino import MerinoLM

    with pytest.raises(ValueError, match="backbone"):
        MerinoLM(bert())
    m = build_model(par("sf"))
    with pytest.raises(ValueError, match="input_ids"):
        m(torch.zeros(1, 65, dtype=torch.long))
