"""PAR Transformer (Mandava, Migacz and Fit-Florea, "Pay Attention when Required", 2020,
arXiv:2009.04534): a stack of sub-layers, each self-attention (``s``), feed-forward (``f``) or
identity (``i``), chosen by a differentiable architecture search instead of strict ``sf``
interleaving.

* ``ParLM`` builds a spec: pre-LN residual sub-layers, learned positions, final LayerNorm, LM head
  tied to the token embedding. PAR builds on Transformer-XL, whose feed-forward uses ReLU, so
  ``f`` sub-layers use ReLU; ``i`` sub-layers hold no parameters.
* ``par_design_rules`` lists which of PAR's published design rules a layer string breaks.
* ``gumbel_par_search`` is PAR's search: a supernet in which every position mixes all three
  candidates with Gumbel-softmax weights over learnable architecture logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import ArchSpec
from ..backbones.par import compress_par
from .layers import FeedForward, LMOutput, SelfAttention, TiedLMHead, init_gpt2, next_token_loss

PAR_ACTIVATION = "relu"
CANDIDATES = ("s", "f", "i")


class AttentionSublayer(nn.Module):
    """``x + Attn(LN(x))``: the context-mixing half of a transformer layer."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.ln = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_head, dropout=dropout, attn_dropout=attn_dropout)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.ln(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class FeedForwardSublayer(nn.Module):
    """``x + FFN(LN(x))``: the per-token half of a transformer layer."""

    def __init__(self, d_model: int, d_inner: int, dropout: float = 0.0):
        super().__init__()
        self.ln = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_inner, activation=PAR_ACTIVATION, dropout=dropout)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.ln(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def _residual_init(module: nn.Module, n_residual: int) -> None:
    # init_gpt2 scales residual projections by 1/sqrt(2 * n_layer); a PAR stack has one residual
    # branch per non-identity sub-layer, so n_layer = n_residual / 2.
    init_gpt2(module, max(n_residual, 1) / 2)  # type: ignore[arg-type]


class ParLM(nn.Module):
    embedding_module, head_module = "wte", "lm_head"
    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone != "par":
            raise ValueError(f"backbone: ParLM needs a 'par' spec, got {spec.backbone!r}")
        self.spec = spec
        d = spec.d_model
        self.wte = nn.Embedding(spec.vocab_size, d)
        self.wpe = nn.Embedding(spec.max_seq_len, d)
        self.drop = nn.Dropout(dropout)
        subs: list[nn.Module] = []
        for kind in spec.layers:
            if kind == "s":
                subs.append(AttentionSublayer(d, spec.n_head, dropout, attn_dropout))
            elif kind == "f":
                subs.append(FeedForwardSublayer(d, spec.d_inner, dropout))
            else:
                subs.append(nn.Identity())
        self.sublayers = nn.ModuleList(subs)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = TiedLMHead(self.wte) if spec.tie_weights else nn.Linear(d, spec.vocab_size, bias=False)
        _residual_init(self, spec.num_layers)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> LMOutput:
        t = input_ids.size(1)
        if t > self.spec.max_seq_len:
            raise ValueError(f"input_ids: sequence length {t} exceeds max_seq_len={self.spec.max_seq_len}")
        x = self.drop(self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device)))
        for sub in self.sublayers:
            x = sub(x)
        logits = self.lm_head(self.ln_f(x))
        return LMOutput(logits, next_token_loss(logits, labels) if labels is not None else None)


# -- PAR's design rules --------------------------------------------------------------------------

def par_design_rules(spec: ArchSpec, attention_span: float = 2 / 3, max_attention_share: float = 1 / 3,
                     max_ffn_run: int = 5) -> list[str]:
    """Which of PAR's design rules the layer string of ``spec`` breaks (empty list: none).

    PAR's search on Transformer-XL led to two findings, summarised as "self-attention blocks may
    only be useful in the first two-thirds of layers in a network, and a 1:5 ratio of
    self-attention to feed-forward layers is sufficient"; its models interleave one attention
    sub-layer with a few feed-forward ones early on and end with feed-forward only (the base model
    is ``(sfff)x6 (f)x8``). We check, over the non-identity sub-layers (identity adds no depth):

    1. *span*: no self-attention after the first ``attention_span`` (2/3) of the depth;
    2. *share*: at most ``max_attention_share`` (1/3) of the sub-layers are self-attention (PAR
       removes ~63 % of Transformer-XL's attention, whose plain ``sf`` stack has 1/2; the base
       model has 6/32), and at least one is (a stack without attention sees no context);
    3. *interleaving*: inside the attention span, no run of more than ``max_ffn_run`` (5, from
       the 1:5 ratio) feed-forward sub-layers without attention, the leading run included. This
       is where the 1:5 ratio applies: over the whole depth, 1:5 within the first 2/3 and
       feed-forward only after it give an attention share of about 1/9.
    """
    if spec.backbone != "par":
        raise ValueError(f"backbone: design rules apply to 'par' specs, got {spec.backbone!r}")
    kinds = [k for k in spec.layers if k != "i"]
    where = [i for i, k in enumerate(spec.layers) if k != "i"]  # index in the full string
    depth = len(kinds)
    if depth == 0:
        return ["share: the network has only identity sub-layers"]
    broken: list[str] = []
    span_end = math.ceil(attention_span * depth - 1e-9)
    late = [where[p] for p, k in enumerate(kinds) if k == "s" and p >= span_end]
    if late:
        broken.append(
            f"span: self-attention at sub-layer(s) {late} lies past the first {attention_span:.3g} "
            f"of the depth ({span_end} of {depth} non-identity sub-layers)"
        )
    share = kinds.count("s") / depth
    if share == 0:
        broken.append("share: no self-attention sub-layer, so no token sees its context")
    elif share > max_attention_share + 1e-9:
        broken.append(
            f"share: {kinds.count('s')} of {depth} sub-layers are self-attention ({share:.3f}), "
            f"more than {max_attention_share:.3f}"
        )
    run, run_start = 0, 0
    for p in range(span_end):
        if kinds[p] == "s":
            run = 0
            continue
        if run == 0:
            run_start = p
        run += 1
        if run == max_ffn_run + 1:
            broken.append(
                f"interleaving: more than {max_ffn_run} feed-forward sub-layers without attention "
                f"from sub-layer {where[run_start]} inside the attention span"
            )
    return broken


# -- differentiable search ----------------------------------------------------------------------

class _MixedSublayer(nn.Module):
    """All three candidates at one position: ``x + w_s Attn(LN(x)) + w_f FFN(LN(x)) + w_i * 0``."""

    def __init__(self, d_model: int, n_head: int, d_inner: int):
        super().__init__()
        self.s = AttentionSublayer(d_model, n_head)
        self.f = FeedForwardSublayer(d_model, d_inner)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + w[0] * self.s.branch(x) + w[1] * self.f.branch(x)


class ParSupernet(nn.Module):
    """The search supernet: ``n_sublayer`` mixed positions and architecture logits ``(n, 3)`` over
    (s, f, i)."""

    def __init__(self, n_sublayer: int, d_model: int, n_head: int, d_inner: int, vocab_size: int,
                 max_seq_len: int):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_seq_len, d_model)
        self.mixed = nn.ModuleList(_MixedSublayer(d_model, n_head, d_inner) for _ in range(n_sublayer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        _residual_init(self, n_sublayer)
        self.lm_head.weight = self.wte.weight
        self.arch_logits = nn.Parameter(torch.zeros(n_sublayer, len(CANDIDATES)))

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "arch_logits"]

    def forward(self, input_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        t = input_ids.size(1)
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        for i, sub in enumerate(self.mixed):
            x = sub(x, weights[i])
        return self.lm_head(self.ln_f(x))


@dataclass
class ParSearchResult:
    spec: ArchSpec
    probs: list[list[float]]  # per position, softmax of the architecture logits over (s, f, i)
    initial_logits: list[list[float]]
    final_logits: list[list[float]]
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def layers(self) -> str:
        return self.spec.layers

    @property
    def notation(self) -> str:
        return compress_par(self.spec.layers)


def token_batches(tokens: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
    """An endless, seeded stream of ``(batch_size, seq_len)`` windows cut at random offsets."""
    if tokens.dim() != 1 or tokens.numel() <= seq_len:
        raise ValueError(
            f"tokens: need a 1-D tensor longer than seq_len={seq_len}, got {tuple(tokens.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    span = tokens.numel() - seq_len
    while True:
        starts = torch.randint(0, span + 1, (batch_size,), generator=gen)
        yield torch.stack([tokens[s:s + seq_len] for s in starts.tolist()])


def gumbel_par_search(
    batches: Iterable[torch.Tensor],
    *,
    n_sublayer: int,
    d_model: int,
    n_head: int,
    d_inner: int,
    vocab_size: int,
    max_seq_len: int,
    steps: int,
    seed: int,
    arch_batches: Iterable[torch.Tensor] | None = None,
    lr: float = 3e-3,
    arch_lr: float = 3e-2,
    tau_start: float = 5.0,
    tau_end: float = 0.5,
    cost_weight: float = 0.0,
) -> ParSearchResult:
    """PAR's differentiable search over (s, f, i) at every position.

    Each step first updates the network weights on one batch (architecture logits fixed), then
    the architecture logits on the next batch (weights fixed; first-order DARTS-style
    alternation). Both passes mix the candidates with Gumbel-softmax weights at a temperature
    annealed geometrically from ``tau_start`` to ``tau_end``. ``cost_weight`` adds the expected
    relative FLOPs of the chosen candidates to the architecture loss, trading quality for speed.
    The run is seeded (initialisation and Gumbel noise) and leaves the global RNG untouched.
    Returns the argmax layer string as a ``par`` spec and the final probabilities.
    """
    for name, value in (("n_sublayer", n_sublayer), ("d_model", d_model), ("n_head", n_head),
                        ("d_inner", d_inner), ("vocab_size", vocab_size), ("max_seq_len", max_seq_len),
                        ("steps", steps)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if d_model % n_head:
        raise ValueError(f"n_head: {n_head} heads do not divide d_model={d_model}")
    if not 0 < tau_end <= tau_start:
        raise ValueError(f"tau_end: need 0 < tau_end <= tau_start, got {tau_end}, {tau_start}")
    from ..counting.blocks import par_sublayer_flops

    def template(layers: str) -> ArchSpec:
        return ArchSpec(backbone="par", layers=layers, d_model=d_model, n_head=n_head, d_inner=d_inner,
                        vocab_size=vocab_size, max_seq_len=max_seq_len)

    train_iter = iter(batches)
    arch_iter = iter(arch_batches) if arch_batches is not None else train_iter
    used = 0

    def next_batch(it: Iterator[torch.Tensor]) -> torch.Tensor:
        nonlocal used
        try:
            batch = next(it)
        except StopIteration:
            raise ValueError(f"batches: the stream ended after {used} batches; {steps} steps need "
                             f"{2 * steps if arch_batches is None else steps} of them") from None
        used += 1
        if batch.dim() != 2 or batch.size(1) > max_seq_len:
            raise ValueError(
                f"batches: expected (batch, seq<={max_seq_len}) token ids, got {tuple(batch.shape)}"
            )
        return batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ParSupernet(n_sublayer, d_model, n_head, d_inner, vocab_size, max_seq_len)
        initial = net.arch_logits.detach().clone()
        w_opt = torch.optim.AdamW(net.weight_parameters(), lr=lr, weight_decay=0.0)
        a_opt = torch.optim.Adam([net.arch_logits], lr=arch_lr, betas=(0.5, 0.999))
        gen = torch.Generator().manual_seed(seed + 1)
        seq = 64 if max_seq_len >= 64 else max_seq_len
        cost = torch.tensor([float(c) for c in par_sublayer_flops(d_model, n_head, d_inner, seq)])
        cost = cost / cost.max()
        history: list[dict[str, float]] = []
        net.train()

        def mix(tau: float) -> torch.Tensor:
            u = torch.rand(net.arch_logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-10)
            return F.softmax((net.arch_logits - torch.log(-torch.log(u))) / tau, dim=-1)

        for step in range(steps):
            tau = tau_start * (tau_end / tau_start) ** (step / max(steps - 1, 1))
            batch = next_batch(train_iter)
            logits = net(batch, mix(tau).detach())
            w_loss = next_token_loss(logits, batch)
            w_opt.zero_grad(set_to_none=True)
            w_loss.backward()
            w_opt.step()

            batch = next_batch(arch_iter)
            for p in net.weight_parameters():
                p.requires_grad_(False)
            logits = net(batch, mix(tau))
            a_loss = next_token_loss(logits, batch)
            total = a_loss
            if cost_weight:
                total = total + cost_weight * (F.softmax(net.arch_logits, -1) * cost).sum(-1).mean()
            a_opt.zero_grad(set_to_none=True)
            total.backward()
            a_opt.step()
            for p in net.weight_parameters():
                p.requires_grad_(True)
            history.append(
                {"step": step, "tau": tau, "weight_loss": w_loss.item(), "arch_loss": a_loss.item()}
            )

        final = net.arch_logits.detach().clone()
    probs = F.softmax(final, dim=-1)
    layers = "".join(CANDIDATES[int(k)] for k in probs.argmax(-1))
    return ParSearchResult(template(layers), probs.tolist(), initial.tolist(), final.tolist(), history)
