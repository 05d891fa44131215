"""Data-dependent zero-cost proxies: one batch of token ids, one untrained model, no training.

Each proxy has the signature ``fn(model, batch, spec) -> float``; ``run_data_proxy`` builds the
seeded model from the spec, runs the proxy and counts its FLOPs. The scored weights are the
``nn.Linear`` weights inside modules with ``role = "attn"`` or ``"ffn"``; output-based proxies take
the hidden state entering the module the model names as ``head_module``. Every proxy keeps its
authors' "higher is better" orientation. Formulas and the Transformer pitfalls handled here
(LayerNorm and GELU under SynFlow, float64, tied and adaptive heads): docs/proxies.md.
"""

from __future__ import annotations

import copy
import math
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.proxies.base import Proxy, get, proxy

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from torch.nn import attention
    from torch.utils import flop_counter
else:  # declaring the proxies imports no torch; scoring one does
    torch = lazy.module("torch")
    nn = lazy.module("torch.nn")
    flop_counter = lazy.module("torch.utils.flop_counter")
    attention = lazy.module("torch.nn.attention")


@dataclass(frozen=True)
class Scored:
    """One scored weight: dotted module name, kind ("attn" or "ffn"), its Linear module."""

    name: str
    kind: str
    module: nn.Linear

    @property
    def weight(self) -> nn.Parameter:
        return self.module.weight


def scored_weights(model: nn.Module) -> list[Scored]:
    """Attention and FFN ``nn.Linear`` weights of the decoder (see the module docstring)."""
    modules = dict(model.named_modules())
    embedding_weights = {id(m.weight) for m in modules.values() if isinstance(m, nn.Embedding)}
    out: list[Scored] = []
    seen: set[int] = set()
    for name, mod in modules.items():
        if not isinstance(mod, nn.Linear) or id(mod.weight) in embedding_weights or id(mod.weight) in seen:
            continue
        parts = name.split(".")
        kind = None
        for i in range(len(parts) - 1, 0, -1):  # nearest enclosing module first
            kind = getattr(modules[".".join(parts[:i])], "role", None)
            if kind:
                break
        if kind:
            seen.add(id(mod.weight))
            out.append(Scored(name, kind, mod))
    return out


def _require_scored(model: nn.Module) -> list[Scored]:
    scored = scored_weights(model)
    if not scored:
        raise ValueError("model: no attention or feed-forward Linear weights found to score")
    return scored


def _loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    out = model(batch, labels=batch)
    if out.loss is None:
        raise ValueError("model: forward(labels=...) returned no loss")
    return out.loss


def _head_module(model: nn.Module) -> nn.Module | None:
    """The output head the model names in ``head_module`` (None when it names none)."""
    name = getattr(model, "head_module", None)
    return getattr(model, name) if name else None


def _output_sum(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Sum of the final hidden state entering the output head.

    The head is left out on purpose: an adaptive softmax returns log-probabilities (not a flow), and
    scoring every architecture of a space before its head keeps values comparable across
    ``div_val``. Models without a recognisable head use the summed logits.
    """
    head = _head_module(model)
    seen: list[torch.Tensor] = []
    handle = None
    if head is not None:
        handle = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        out = model(batch)
    finally:
        if handle is not None:
            handle.remove()
    if seen:
        return seen[-1].sum()
    if out.logits is None:
        raise ValueError("model: returned no logits and has no recognisable output head")
    return out.logits.sum()


def _grads(model: nn.Module, batch: torch.Tensor, scored: list[Scored]) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = _loss(model, batch)
    return list(torch.autograd.grad(loss, [s.weight for s in scored]))


@contextmanager
def _math_sdpa() -> Iterator[None]:
    with attention.sdpa_kernel(attention.SDPBackend.MATH):
        yield


# -- gradient-based --------------------------------------------------------------------------
@proxy("grad_norm", needs_data=True, doc="sum over scored weights of ||dL/dW||_F (higher = better).")
def grad_norm(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """grad_norm = sum_W ||dL/dW||_F over the scored weights (Abdelfattah et al., ICLR 2021).

    Sign: as published, larger gradient norm = better (trains faster from initialisation).
    """
    scored = _require_scored(model)
    return float(sum(g.double().norm() for g in _grads(model, batch, scored)))


@proxy("snip", needs_data=True, doc="sum over scored weights of |W * dL/dW| (higher = better).")
def snip(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """SNIP saliency (Lee et al., ICLR 2019) summed over the scored weights: sum |W ⊙ dL/dW|.

    Sign: as published in zero-cost NAS (Abdelfattah et al.), higher = better.
    """
    scored = _require_scored(model)
    grads = _grads(model, batch, scored)
    pairs = zip(scored, grads, strict=True)
    return float(sum((s.weight.detach().double() * g.double()).abs().sum() for s, g in pairs))


@proxy(
    "grasp",
    needs_data=True,
    doc="sum over scored weights of -W * (H g) (GraSP; higher = better as published by Abdelfattah et al.).",
)
def grasp(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """GraSP (Wang et al., ICLR 2020) as a network score: sum over scored weights of ``-W ⊙ (H g)``,
    ``g = dL/dW`` and ``H`` the Hessian of the loss w.r.t. the scored weights (one Hessian-vector
    product, same batch for g and Hg).

    Sign: the zero-cost NAS convention (Abdelfattah et al.) of reporting the sum as higher = better;
    its correlation with trained quality is weak and of either sign in published studies.
    Attention runs on the math SDPA kernel here because the fused CPU kernel has no double backward.
    """
    scored = _require_scored(model)
    weights = [s.weight for s in scored]
    with _math_sdpa():
        g0 = [g.detach() for g in _grads(model, batch, scored)]
        model.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(_loss(model, batch), weights, create_graph=True)
        z = sum((g * v).sum() for g, v in zip(grads, g0, strict=True))
        hg = torch.autograd.grad(z, weights)
    return float(sum((-w.detach().double() * h.double()).sum() for w, h in zip(weights, hg, strict=True)))


@proxy(
    "fisher", needs_data=True, doc="sum over scored Linear outputs a of 0.5*mean_b(sum_t a*dL/da)^2 (higher = better)."
)
def fisher(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """Fisher information of the scored layers' output channels (Theis et al. 2018, as a NAS proxy by
    Abdelfattah et al.): for each scored Linear with output ``a`` (batch, time, channels),
    ``sum_c 0.5 * mean_b (sum_t a[b,t,c] * dL/da[b,t,c])^2``, summed over layers.

    Sign: higher = better (as published).
    """
    scored = _require_scored(model)
    acts: list[torch.Tensor] = []

    def keep(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    handles = [s.module.register_forward_hook(keep) for s in scored]
    try:
        model.zero_grad(set_to_none=True)
        _loss(model, batch).backward()
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for a in acts:  # a shared module applied k times contributes k terms
        g = (a.detach().double() * a.grad.double()).reshape(a.shape[0], -1, a.shape[-1]).sum(1)
        total += float(0.5 * g.pow(2).mean(0).sum())
    model.zero_grad(set_to_none=True)
    return total


# -- SynFlow and DSS -------------------------------------------------------------------------
def _affine_layernorm(self: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    if self.weight is not None:
        x = x * self.weight
    return x + self.bias if self.bias is not None else x


def _synflow_model(model: nn.Module) -> nn.Module:
    """A float64 copy with every parameter replaced by its absolute value, LayerNorm made affine and
    GELU swapped for ReLU (SynFlow's inputs are positive, where ReLU is the identity that GELU
    approaches; the tanh-GELU backward is 0 * inf = NaN at the magnitudes deep stacks reach)."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    for mod in list(m.modules()):
        if isinstance(mod, nn.LayerNorm):
            mod.forward = types.MethodType(_affine_layernorm, mod)
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.GELU):
                setattr(mod, name, nn.ReLU())
    return m


def _synflow_terms(model: nn.Module, batch: torch.Tensor) -> tuple[list[Scored], list[torch.Tensor]]:
    """Per scored weight, ``|W| ⊙ dR/d|W|`` with R the summed output of the |θ|, float64 network."""
    m = _synflow_model(model)
    scored = _require_scored(m)
    with _math_sdpa():  # the fused CPU kernel's backward returns NaN on saturated float64 scores
        r = _output_sum(m, batch)
        grads = torch.autograd.grad(r, [s.weight for s in scored])
    return scored, [s.weight.detach() * g for s, g in zip(scored, grads, strict=True)]


def _log(value: float) -> float:
    return math.log(value) if value > 0 else (-math.inf if value == 0 else math.nan)


@proxy(
    "synflow",
    needs_data=True,
    doc="log sum over scored weights of |W| * dR/d|W|, R = summed "
    "final hidden state of the |theta| float64 net, LayerNorm affine-only (higher = better).",
)
def synflow(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """SynFlow (Tanaka et al., NeurIPS 2020) as a network score: every parameter replaced by its
    absolute value, LayerNorm by its affine part (see the module docstring), float64; ``R`` is the
    sum of the final hidden state (entering the head) for the batch's token ids (token embeddings
    are |E| rows, so the batch only picks which rows; SynFlow's all-ones input has no token-id
    analogue). The score is
    ``log sum_W sum(|W| ⊙ dR/d|W|)`` over the scored weights.

    Sign: higher = better (as published); the log keeps the order and fits in a float.
    """
    _, terms = _synflow_terms(model, batch)
    return _log(float(sum(t.sum() for t in terms)))


@proxy(
    "dss",
    needs_data=True,
    doc="log( sum_attn ||W||_* ||dL/dW||_* + sum_mlp |W| * dR/d|W| ) (Zhou et al. 2022; higher = better).",
)
def dss(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """DSS-indicator of TF-TAS (Zhou et al., CVPR 2022): synaptic *diversity* of the attention weights,
    ``sum_W ||W||_* · ||dL/dW||_*`` (nuclear norms), plus synaptic *saliency* of the MLP weights,
    ``sum_W sum(|W| ⊙ dR/d|W|)`` computed SynFlow-style (float64, |θ|, affine LayerNorm). Reported as
    the log of the sum (the saliency part grows like SynFlow). Models with no FFN (PAR strings of
    only ``s``) score the diversity part alone, and vice versa.

    Sign: higher = better (as published).
    """
    scored = _require_scored(model)
    diversity = 0.0
    attn = [s for s in scored if s.kind == "attn"]
    if attn:
        model.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(_loss(model, batch), [s.weight for s in attn])
        for s, g in zip(attn, grads, strict=True):
            w = s.weight.detach().double()
            nuc = torch.linalg.matrix_norm(w, "nuc") * torch.linalg.matrix_norm(g.double(), "nuc")
            diversity += float(nuc)
    saliency = 0.0
    if any(s.kind == "ffn" for s in scored):
        syn_scored, terms = _synflow_terms(model, batch)
        saliency = float(sum(t.sum() for s, t in zip(syn_scored, terms, strict=True) if s.kind == "ffn"))
    return _log(diversity + saliency)


# -- activation-based ------------------------------------------------------------------------
def _ffn_pre_activation_modules(model: nn.Module) -> list[nn.Linear]:
    """The first scored Linear of each FFN module: its output is the pre-activation."""
    first: dict[str, nn.Linear] = {}
    for s in scored_weights(model):
        if s.kind == "ffn":
            first.setdefault(s.name.rsplit(".", 1)[0], s.module)
    return list(first.values())


def naswot_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K[i, j] = number of units on which binary codes i and j agree (N_A minus Hamming distance)."""
    c = codes.double()
    return c @ c.T + (1 - c) @ (1 - c).T


@proxy(
    "relu_log_det",
    needs_data=True,
    doc="NASWOT: log|det K|, K_ij = units where samples i, j share "
    "the sign of the FFN pre-activation (higher = better).",
)
def relu_log_det(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """NASWOT (Mellor et al., ICML 2021): each sequence of the batch gets a binary code, the sign
    (> 0) of every FFN pre-activation unit at every position (transformers use GELU, so the input of
    the activation is hooked and binarised rather than a ReLU's on/off pattern); the score is
    ``log |det K|`` with ``K = c c^T + (1-c)(1-c)^T``. Needs at least two distinct sequences.

    Sign: higher = better (as published).
    """
    mods = _ffn_pre_activation_modules(model)
    if not mods:
        raise ValueError("model: relu_log_det needs feed-forward layers (none found)")
    codes: list[torch.Tensor] = []

    def keep(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        codes.append((out.detach() > 0).reshape(out.shape[0], -1))

    handles = [m.register_forward_hook(keep) for m in mods]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(naswot_kernel(torch.cat(codes, dim=1)))[1])


def _input_embedding_module(model: nn.Module) -> nn.Module:
    """The module whose output is the token embedding, as the model names it in ``embedding_module``."""
    name = getattr(model, "embedding_module", None)
    if not name:
        raise ValueError(f"model: {type(model).__name__} names no embedding_module for jacob_cov")
    return getattr(model, name)


def jacob_cov_score(jacobians: torch.Tensor, k: float = 1e-5) -> float:
    """-sum_i [log(l_i + k) + 1/(l_i + k)] over eigenvalues of the correlation of per-sample Jacobians."""
    j = jacobians.reshape(jacobians.shape[0], -1).double()
    corr = torch.corrcoef(j)
    corr = torch.nan_to_num(corr, nan=0.0)
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + k) + 1.0 / (eig + k)).sum())


@proxy(
    "jacob_cov",
    needs_data=True,
    doc="Mellor et al. v1: -sum log(l+k)+1/(l+k) over eigenvalues of the "
    "correlation of per-sequence Jacobians d(sum final hidden)/d(token embeddings) (higher = better).",
)
def jacob_cov(model: nn.Module, batch: torch.Tensor, spec: ArchSpec | None = None) -> float:
    """Jacobian covariance (Mellor et al. 2020, v1 of NASWOT): ``J_i = d(sum of the final hidden
    state of sequence i)/d(token embeddings of sequence i)``; sequences do not interact, so one backward of
    the summed output gives every J_i. Score ``-sum_i [log(l_i + k) + 1/(l_i + k)]``, ``k = 1e-5``,
    over the eigenvalues of the correlation matrix of the J_i.

    Sign: higher = better (less correlated Jacobians, as published).
    """
    emb = _input_embedding_module(model)
    store: list[torch.Tensor] = []

    def keep(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        # The embedding output is already in the graph (its weights need grad): take the gradient
        # with respect to it directly rather than swapping in a fresh leaf, which breaks under the
        # module hooks of FlopCounterMode for some models (Transformer-XL's adaptive embedding).
        store.append(out)

    handle = emb.register_forward_hook(keep)
    try:
        r = _output_sum(model, batch)
    finally:
        handle.remove()
    (jac,) = torch.autograd.grad(r, store[:1])
    return jacob_cov_score(jac)


# -- running a proxy on a spec ---------------------------------------------------------------
def count_flops(fn: Callable[[], float]) -> tuple[float, int]:
    """Run ``fn`` under ``FlopCounterMode`` and return its value and the FLOPs it counted (matmuls,
    attention, convolutions; SVDs and elementwise ops are not counted by PyTorch's counter)."""
    counter = flop_counter.FlopCounterMode(display=False)
    with counter:
        value = fn()
    return value, int(counter.get_total_flops())


def run_data_proxy(
    proxy: Proxy | str, spec: ArchSpec, batch: torch.Tensor, seed: int = 0, **settings: Any
) -> tuple[float, int]:
    """Build the untrained model for ``spec`` (seeded), run ``proxy`` on ``batch``; (value, FLOPs)."""
    if isinstance(proxy, str):
        proxy = get(proxy)
    if not proxy.needs_data:
        raise ValueError(f"proxies: {proxy.name!r} is analytic; call it with the spec")
    batch = torch.as_tensor(batch)
    if batch.dim() != 2 or batch.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"batch: expected a 2-D integer tensor of token ids, got {tuple(batch.shape)} {batch.dtype}")
    if int(batch.max()) >= spec.vocab_size or int(batch.min()) < 0:
        raise ValueError(f"batch: token ids must lie in [0, vocab_size={spec.vocab_size})")
    if batch.shape[1] > spec.max_seq_len:
        raise ValueError(f"batch: sequence length {batch.shape[1]} exceeds max_seq_len={spec.max_seq_len}")
    batch = batch.long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.plugin.build(spec)
    model.train()
    return count_flops(lambda: proxy.fn(model, batch, spec, **settings))


__all__ = [
    "Scored",
    "count_flops",
    "dss",
    "fisher",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "jacob_cov_score",
    "naswot_kernel",
    "relu_log_det",
    "run_data_proxy",
    "scored_weights",
    "snip",
    "synflow",
]
