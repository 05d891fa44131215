"""PAR Transformer (Mandava, Migacz and Fit-Florea, "Pay Attention when Required", 2020,
arXiv:2009.04534): a stack of sub-layers, each self-attention (``s``), feed-forward (``f``) or
identity (``i``), chosen by a differentiable architecture search instead of strict ``sf``
interleaving.

``ParLM`` builds a spec: pre-LN residual sub-layers, learned positions, final LayerNorm, LM head
tied to the token embedding. PAR builds on Transformer-XL, whose feed-forward uses ReLU, so ``f``
sub-layers use ReLU; ``i`` sub-layers hold no parameters. PAR's search and design rules live in
``paretolm.search.methods.par``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from paretolm.core.arch import ArchSpec
from paretolm.core.blocks import Block
from paretolm.data import batch_stream
from paretolm.models.layers import (
    Cache,
    FeedForward,
    LMOutput,
    SelfAttention,
    TiedLMHead,
    init_gpt2,
    make_norm,
    next_token_loss,
    past_length,
)

CANDIDATES = ("s", "f", "i")


class AttentionSublayer(nn.Module):
    """``x + Attn(LN(x))``: the context-mixing half of a transformer layer (an ``s`` block)."""

    def __init__(self, block: Block, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.ln = make_norm(block.norm, block.d_model)
        self.attn = SelfAttention.of(block.d_model, block.attention, dropout, attn_dropout)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.ln(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)

    def forward_cached(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` with the attention's key/value cache."""
        a, present = self.attn.forward_cached(self.ln(x), past)
        return x + a, present


class FeedForwardSublayer(nn.Module):
    """``x + FFN(LN(x))``: the per-token half of a transformer layer (an ``f`` block)."""

    def __init__(self, block: Block, dropout: float = 0.0):
        super().__init__()
        self.ln = make_norm(block.norm, block.d_model)
        self.ffn = FeedForward.of(block.d_model, block.ffn, dropout)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.ln(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def residual_init(module: nn.Module, n_residual: int) -> None:
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
        blocks = iter(spec.block_view())  # one block per s or f sub-layer, in order
        subs: list[nn.Module] = []
        for kind in spec.layers:
            if kind == "s":
                subs.append(AttentionSublayer(next(blocks), dropout, attn_dropout))
            elif kind == "f":
                subs.append(FeedForwardSublayer(next(blocks), dropout))
            else:
                subs.append(nn.Identity())
        self.sublayers = nn.ModuleList(subs)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = TiedLMHead(self.wte) if spec.tie_weights else nn.Linear(d, spec.vocab_size, bias=False)
        residual_init(self, spec.num_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        past: list[Cache] | None = None,
        use_cache: bool = False,
    ) -> LMOutput:
        """``past``/``use_cache``: the decoding cache, one (keys, values) entry per attention
        (``s``) sub-layer, in order; feed-forward and identity sub-layers keep nothing."""
        start, t = past_length(past), input_ids.size(1)
        if start + t > self.spec.max_seq_len:
            raise ValueError(f"input_ids: sequence length {start + t} exceeds max_seq_len={self.spec.max_seq_len}")
        x = self.drop(self.wte(input_ids) + self.wpe(torch.arange(start, start + t, device=input_ids.device)))
        present = None
        if past is None and not use_cache:
            for sub in self.sublayers:
                x = sub(x)
        else:
            present = []
            for sub in self.sublayers:
                if isinstance(sub, AttentionSublayer):
                    x, kv = sub.forward_cached(x, past[len(present)] if past else None)
                    present.append(kv)
                else:
                    x = sub(x)
        logits = self.lm_head(self.ln_f(x))
        loss = next_token_loss(logits, labels) if labels is not None else None
        return LMOutput(logits, loss, past=present if use_cache else None)


def token_batches(tokens: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
    """An endless, seeded stream of ``(batch_size, seq_len)`` windows cut at random offsets, by
    ``paretolm.data.batch_stream`` (the window cutter training and the proxies use too)."""
    if tokens.dim() != 1 or tokens.numel() <= seq_len:
        raise ValueError(f"tokens: need a 1-D tensor longer than seq_len={seq_len}, got {tuple(tokens.shape)}")
    return batch_stream(tokens.detach().cpu(), batch_size, seq_len, seed)
