"""PAR's differentiable search: a supernet whose every position mixes s, f and i with
Gumbel-softmax weights over learnable architecture logits; the argmax string is the result."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.par import Par, compress_par
from paretolm.models.layers import next_token_loss
from paretolm.models.par import CANDIDATES, AttentionSublayer, FeedForwardSublayer, residual_init


class _MixedSublayer(nn.Module):
    """All three candidates at one position: ``x + w_s Attn(LN(x)) + w_f FFN(LN(x)) + w_i * 0``."""

    def __init__(self, d_model: int, n_head: int, d_inner: int):
        super().__init__()
        s_block, f_block = Par.sublayer_blocks(d_model, n_head, d_inner)
        self.s = AttentionSublayer(s_block)
        self.f = FeedForwardSublayer(f_block)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + w[0] * self.s.branch(x) + w[1] * self.f.branch(x)


class ParSupernet(nn.Module):
    """The search supernet: ``n_sublayer`` mixed positions and architecture logits ``(n, 3)`` over
    (s, f, i)."""

    def __init__(self, n_sublayer: int, d_model: int, n_head: int, d_inner: int, vocab_size: int, max_seq_len: int):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_seq_len, d_model)
        self.mixed = nn.ModuleList(_MixedSublayer(d_model, n_head, d_inner) for _ in range(n_sublayer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        residual_init(self, n_sublayer)
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
    for name, value in (
        ("n_sublayer", n_sublayer),
        ("d_model", d_model),
        ("n_head", n_head),
        ("d_inner", d_inner),
        ("vocab_size", vocab_size),
        ("max_seq_len", max_seq_len),
        ("steps", steps),
    ):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if d_model % n_head:
        raise ValueError(f"n_head: {n_head} heads do not divide d_model={d_model}")
    if not 0 < tau_end <= tau_start:
        raise ValueError(f"tau_end: need 0 < tau_end <= tau_start, got {tau_end}, {tau_start}")

    def template(layers: str) -> ArchSpec:
        return ArchSpec(
            backbone="par",
            layers=layers,
            d_model=d_model,
            n_head=n_head,
            d_inner=d_inner,
            vocab_size=vocab_size,
            max_seq_len=max_seq_len,
        )

    train_iter = iter(batches)
    arch_iter = iter(arch_batches) if arch_batches is not None else train_iter
    used = 0

    def next_batch(it: Iterator[torch.Tensor]) -> torch.Tensor:
        nonlocal used
        try:
            batch = next(it)
        except StopIteration:
            raise ValueError(
                f"batches: the stream ended after {used} batches; {steps} steps need "
                f"{2 * steps if arch_batches is None else steps} of them"
            ) from None
        used += 1
        if batch.dim() != 2 or batch.size(1) > max_seq_len:
            raise ValueError(f"batches: expected (batch, seq<={max_seq_len}) token ids, got {tuple(batch.shape)}")
        return batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ParSupernet(n_sublayer, d_model, n_head, d_inner, vocab_size, max_seq_len)
        initial = net.arch_logits.detach().clone()
        w_opt = torch.optim.AdamW(net.weight_parameters(), lr=lr, weight_decay=0.0)
        a_opt = torch.optim.Adam([net.arch_logits], lr=arch_lr, betas=(0.5, 0.999))
        gen = torch.Generator().manual_seed(seed + 1)
        seq = 64 if max_seq_len >= 64 else max_seq_len
        cost = torch.tensor([float(c) for c in Par.sublayer_flops(d_model, n_head, d_inner, seq)])
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
            history.append({"step": step, "tau": tau, "weight_loss": w_loss.item(), "arch_loss": a_loss.item()})

        final = net.arch_logits.detach().clone()
    probs = F.softmax(final, dim=-1)
    layers = "".join(CANDIDATES[int(k)] for k in probs.argmax(-1))
    return ParSearchResult(template(layers), probs.tolist(), initial.tolist(), final.tolist(), history)
