"""Zero-cost proxies: known answers on tiny hand-built networks, each by a second, independent route."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.models.layers import FeedForward, LMOutput, SelfAttention
from paretolm.proxies import PROXIES, get, registry
from paretolm.proxies import zero_cost as zc

V, D, FF = 7, 3, 4


class TinyLM(nn.Module):
    """Embedding -> [x + SelfAttention(x)] -> [FeedForward] -> head; no LayerNorm, loss on all tokens."""

    embedding_module, head_module = "wte", "head"

    def __init__(self, attention: bool = False, ffn: bool = True, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.wte = nn.Embedding(V, D)
        self.attn = SelfAttention(D, 1) if attention else None
        self.ffn = FeedForward(D, FF, activation="relu") if ffn else None
        self.head = nn.Linear(D, V)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.7)
        self.double()

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            x = x + self.attn(x)
        return self.ffn(x) if self.ffn is not None else x

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> LMOutput:
        logits = self.head(self.hidden(self.wte(input_ids)))
        loss = None if labels is None else F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
        return LMOutput(logits, loss)


BATCH = torch.tensor([[0, 3, 5, 1], [2, 2, 6, 4], [1, 0, 3, 3]])


def _manual_grads(model: TinyLM, params: list[nn.Parameter]) -> list[torch.Tensor]:
    model.zero_grad()
    model(BATCH, labels=BATCH).loss.backward()
    return [p.grad.clone() for p in params]


def test_scored_weights_are_attention_and_ffn_only() -> None:
    m = TinyLM(attention=True)
    names = {(s.name, s.kind) for s in zc.scored_weights(m)}
    assert names == {("attn.qkv", "attn"), ("attn.proj", "attn"), ("ffn.fc", "ffn"), ("ffn.proj", "ffn")}


def test_synflow_closed_form_on_two_layer_linear_net() -> None:
    m = TinyLM()
    w1, b1 = m.ffn.fc.weight.detach().abs().numpy(), m.ffn.fc.bias.detach().abs().numpy()
    w2 = m.ffn.proj.weight.detach().abs().numpy()
    e = m.wte.weight.detach().abs().numpy()[BATCH.numpy().ravel()]  # (tokens, D)
    u = np.ones(D)  # R = sum of the head's input
    term1 = sum((w2.T @ u) @ w1 @ et for et in e)
    term2 = sum(u @ w2 @ (w1 @ et + b1) for et in e)
    assert zc.synflow(m, BATCH) == pytest.approx(math.log(term1 + term2), rel=1e-10)


def test_grad_norm_and_snip_by_explicit_backward() -> None:
    m = TinyLM(attention=True)
    params = [m.attn.qkv.weight, m.attn.proj.weight, m.ffn.fc.weight, m.ffn.proj.weight]
    grads = _manual_grads(m, params)
    expected_gn = sum(float(g.norm()) for g in grads)
    expected_snip = sum(float((p.detach() * g).abs().sum()) for p, g in zip(params, grads, strict=True))
    assert zc.grad_norm(m, BATCH) == pytest.approx(expected_gn, rel=1e-10)
    assert zc.snip(m, BATCH) == pytest.approx(expected_snip, rel=1e-10)
    # embeddings and head are not scored: including them changes the value
    extra = _manual_grads(m, [m.wte.weight, m.head.weight])
    assert zc.grad_norm(m, BATCH) != pytest.approx(expected_gn + sum(float(g.norm()) for g in extra))


def test_fisher_by_explicit_activation_gradients() -> None:
    m = TinyLM()
    x = m.wte(BATCH)
    a1 = m.ffn.fc(x)
    a2 = m.ffn.proj(torch.relu(a1))
    loss = F.cross_entropy(m.head(a2).reshape(-1, V), BATCH.reshape(-1))
    g1, g2 = torch.autograd.grad(loss, [a1, a2])
    expected = sum(float(0.5 * ((a.detach() * g).sum(1) ** 2).mean(0).sum()) for a, g in ((a1, g1), (a2, g2)))
    assert zc.fisher(m, BATCH) == pytest.approx(expected, rel=1e-10)


def test_grasp_by_explicit_hessian() -> None:
    m = TinyLM()
    names = ["ffn.fc.weight", "ffn.proj.weight"]
    base = {k: v.detach() for k, v in m.named_parameters()}
    shapes = [base[n].shape for n in names]
    theta = torch.cat([base[n].reshape(-1) for n in names])

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        params, i = dict(base), 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + s.numel()].reshape(s)
            i += s.numel()
        return torch.func.functional_call(m, params, (BATCH,), {"labels": BATCH}).loss

    hess = torch.autograd.functional.hessian(loss_of, theta)
    theta.requires_grad_(True)
    g = torch.autograd.grad(loss_of(theta), theta)[0]
    theta = theta.detach()
    expected = float(-(theta * (hess @ g)).sum())
    assert zc.grasp(m, BATCH) == pytest.approx(expected, rel=1e-8)


def test_jacob_cov_score_known_answer_and_per_sample_jacobians() -> None:
    k = 1e-5
    orth = torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1]])  # zero-mean, orthogonal rows
    assert zc.jacob_cov_score(orth) == pytest.approx(-3 * (math.log(1 + k) + 1 / (1 + k)), rel=1e-9)
    m = TinyLM(attention=True)
    jac = []
    for row in BATCH:
        x = m.wte(row[None]).detach().requires_grad_(True)
        jac.append(torch.autograd.grad(m.hidden(x).sum(), x)[0].reshape(-1).numpy())
    eig = np.linalg.eigvalsh(np.corrcoef(np.stack(jac)))
    expected = float(-(np.log(eig + k) + 1 / (eig + k)).sum())
    assert zc.jacob_cov(m, BATCH) == pytest.approx(expected, rel=1e-8)


def test_naswot_kernel_by_hand_on_three_samples() -> None:
    m = TinyLM()
    with torch.no_grad():
        m.wte.weight[:3] = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float64)
        m.ffn.fc.weight.zero_()
        m.ffn.fc.weight[:2, :2] = torch.tensor([[1.0, -1], [-1, 1]], dtype=torch.float64)
        m.ffn.fc.weight[2:, 2] = 1.0  # units 2, 3 read the zero third coordinate: always code 0
        m.ffn.fc.bias.zero_()
    batch = torch.tensor([[0, 1], [1, 1], [2, 0]])
    # codes (units 0, 1 per token): t0 -> 10, t1 -> 01, t2 -> 00 => K = [[8,6,5],[6,8,5],[5,5,8]]
    kernel = np.array([[8, 6, 5], [6, 8, 5], [5, 5, 8]], dtype=float)
    assert zc.relu_log_det(m, batch) == pytest.approx(math.log(np.linalg.det(kernel)), rel=1e-12)
    # the same kernel from the codes written out (4 units per token, token after token)
    codes = torch.tensor([[1, 0, 0, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]])
    assert zc.naswot_kernel(codes).tolist() == kernel.tolist()
    # identical sequences make K singular: the lowest possible score
    assert zc.relu_log_det(m, torch.tensor([[0, 1], [0, 1], [2, 0]])) == -math.inf


def test_dss_parts_by_hand() -> None:
    ffn_only = TinyLM()
    assert zc.dss(ffn_only, BATCH) == pytest.approx(zc.synflow(ffn_only, BATCH), rel=1e-12)
    attn_only = TinyLM(attention=True, ffn=False)
    params = [attn_only.attn.qkv.weight, attn_only.attn.proj.weight]
    grads = _manual_grads(attn_only, params)
    nuc = lambda t: np.linalg.svd(t.detach().numpy(), compute_uv=False).sum()  # noqa: E731
    expected = sum(nuc(p) * nuc(g) for p, g in zip(params, grads, strict=True))
    assert zc.dss(attn_only, BATCH) == pytest.approx(math.log(expected), rel=1e-10)


def test_synflow_leaves_the_model_untouched_and_handles_layernorm() -> None:
    m = TinyLM()
    before = copy.deepcopy(m.state_dict())
    zc.synflow(m, BATCH)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    ln = nn.LayerNorm(4)
    syn = zc._synflow_model(nn.Sequential(ln))
    const = torch.ones(1, 4, dtype=torch.float64)
    assert torch.allclose(syn(const), (ln.weight.abs() + ln.bias.abs()).double())  # not just beta


def test_flops_of_a_forward_only_proxy_match_the_matmuls() -> None:
    m = TinyLM()
    _, flops = zc.count_flops(lambda: zc.relu_log_det(m, BATCH))
    n, (b, t) = BATCH.numel(), BATCH.shape
    forward = 2 * n * (D * FF + FF * D + D * V)
    kernel = 2 * (2 * b * b * t * FF)  # c c^T and (1-c)(1-c)^T over T*FF code bits
    assert flops == forward + kernel
    _, flops_grad = zc.count_flops(lambda: zc.grad_norm(m, BATCH))
    assert flops_grad > flops


DATA_PROXIES = [name for name, p in PROXIES.items() if p.needs_data]

SMALL = ArchSpec(
    backbone="gpt2", n_layer=2, d_model=64, n_head=2, d_inner=128, vocab_size=300, max_seq_len=32, div_val=1
)


def _batch(spec: ArchSpec, b: int = 4, t: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, spec.vocab_size, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", DATA_PROXIES)
def test_every_proxy_on_a_real_backbone_is_finite_and_deterministic(name: str) -> None:
    batch = _batch(SMALL)
    v1, f1 = zc.run_data_proxy(name, SMALL, batch, seed=0)
    v2, f2 = zc.run_data_proxy(name, SMALL, batch, seed=0)
    assert math.isfinite(v1) and v1 == v2 and f1 == f2 > 0
    v3, _ = zc.run_data_proxy(name, SMALL, batch, seed=1)
    assert v3 != v1  # a different initialisation seed gives a different untrained model


@pytest.mark.parametrize("backbone", BACKBONES.names())
@pytest.mark.parametrize("name", DATA_PROXIES)
def test_every_data_proxy_runs_on_every_backbone(backbone: str, name: str) -> None:
    spec = ArchSpec.from_dict(BACKBONES.get(backbone).example)
    v, flops = zc.run_data_proxy(name, spec, _batch(spec), seed=0)
    assert math.isfinite(v)
    assert flops > 0


def test_synflow_float64_survives_a_deep_wide_stack_and_orders_by_width() -> None:
    deep = ArchSpec(
        backbone="gpt2", n_layer=6, d_model=256, n_head=4, d_inner=1024, vocab_size=300, max_seq_len=32, div_val=1
    )
    batch = _batch(deep, b=2, t=16)
    v_deep, _ = zc.run_data_proxy("synflow", deep, batch)
    assert math.isfinite(v_deep)
    v_narrow, _ = zc.run_data_proxy("synflow", deep.with_(d_inner=512), batch)
    assert v_deep > v_narrow  # higher = bigger flow = predicted lower perplexity


def test_every_registered_proxy_states_its_sign_and_data_needs() -> None:
    reg = registry()
    assert set(DATA_PROXIES) == {"synflow", "snip", "grad_norm", "fisher", "grasp", "jacob_cov", "relu_log_det", "dss"}
    for name in DATA_PROXIES:
        assert reg[name].needs_data
        assert "higher" in reg[name].doc.lower()
    assert not reg["merino_entropy"].needs_data


def test_run_data_proxy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="batch"):
        zc.run_data_proxy("snip", SMALL, torch.full((2, 8), 300))
    with pytest.raises(ValueError, match="batch"):
        zc.run_data_proxy("snip", SMALL, torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="analytic"):
        zc.run_data_proxy("merino_entropy", SMALL, _batch(SMALL))
    with pytest.raises(ValueError, match="unknown proxy"):
        get("no_such_proxy")
