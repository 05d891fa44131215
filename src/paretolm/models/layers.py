"""Building blocks the backbones share: attention on ``scaled_dot_product_attention``, the FFN,
GPT-2 initialisation and the output record."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# One decoding-cache entry: (keys, values) of an attention, or a Transformer-XL layer's memory.
Cache = tuple[torch.Tensor, torch.Tensor] | torch.Tensor


@dataclass
class LMOutput:
    logits: torch.Tensor | None
    loss: torch.Tensor | None = None
    # Transformer-XL's segment memory after this forward: one (batch, <= mem_len, d_model) tensor per
    # layer (the layer's input states), to pass back as ``mems=`` with the next segment.
    mems: list[torch.Tensor] | None = None
    # The decoding cache after this forward (``use_cache=True``), to pass back as ``past=`` with the
    # next tokens: one entry per attention application, (keys, values) of shape
    # (batch, n_head, tokens so far, d_head); Transformer-XL: one memory tensor per layer.
    past: list[Cache] | None = None



def past_length(past: list[Cache] | None) -> int:
    """Tokens already in ``past`` (0 for None or an empty cache)."""
    if not past:
        return 0
    first = past[0]
    return first[0].size(2) if isinstance(first, tuple) else first.size(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection; ``n_head * d_head`` may differ from
    ``d_model`` (heterogeneous layers). Causal unless ``causal=False`` (BERT)."""
    role = "attn"  # what the data-dependent proxies score it as

    def __init__(self, d_model: int, n_head: int, d_head: int | None = None, dropout: float = 0.0,
                 attn_dropout: float = 0.0, causal: bool = True, bias: bool = True):
        super().__init__()
        self.n_head = n_head
        self.d_head = d_head or d_model // n_head
        inner = n_head * self.d_head
        self.qkv = nn.Linear(d_model, 3 * inner, bias=bias)
        self.proj = nn.Linear(inner, d_model, bias=bias)
        self.attn_dropout = attn_dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.causal = causal

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, self.d_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None,
        )
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.d_head)
        return self.resid_dropout(self.proj(y))

    def forward_cached(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
                       ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Causal attention of ``x``'s tokens over the cached keys/values ``past`` and their own;
        returns the output and the cache extended by ``x``'s keys and values."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, self.d_head).permute(2, 0, 3, 1, 4)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        klen = k.size(2)
        # query i sits at position klen - t + i and sees every key up to it; built from aranges
        # (not tril with an offset) so an ONNX export keeps the lengths symbolic
        keys = torch.arange(klen, device=x.device)
        queries = torch.arange(t, device=x.device) + (klen - t)
        mask = keys[None, :] <= queries[:, None]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0,
        )
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.d_head)
        return self.resid_dropout(self.proj(y)), (k, v)


class FeedForward(nn.Module):
    role = "ffn"
    def __init__(self, d_model: int, d_inner: int, activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, d_inner)
        self.proj = nn.Linear(d_inner, d_model)
        self.act = nn.GELU(approximate="tanh") if activation == "gelu" else nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class TiedLMHead(nn.Module):
    """LM head that reads the token embedding's matrix at call time. The tensor is stored once, so
    state dicts and safetensors files hold no alias (``save_pretrained`` rejects shared tensors it
    was not told about) and a reload keeps the tie."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.__dict__["_embedding"] = embedding  # not a submodule: the parent owns it

    @property
    def weight(self) -> torch.Tensor:
        return self._embedding.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._embedding.weight)


class PreLNBlock(nn.Module):
    """Pre-LayerNorm decoder block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, d_model: int, n_head: int, d_inner: int, activation: str = "gelu",
                 dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_head, dropout=dropout, attn_dropout=attn_dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model, d_inner, activation=activation, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def forward_cached(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
                       ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` with the attention's key/value cache (see ``SelfAttention.forward_cached``)."""
        a, present = self.attn.forward_cached(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


def init_gpt2(module: nn.Module, n_layer: int, std: float = 0.02) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by
    1/sqrt(2 * n_layer)."""
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            scale = 1 / math.sqrt(2 * max(n_layer, 1)) if name.endswith("proj.weight") else 1.0
            nn.init.normal_(p, mean=0.0, std=std * scale)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting labels[t + 1]; -100 labels are ignored.

    The labels are shifted (and the last position ignored) rather than the logits sliced, which
    would copy the largest tensor of the step."""
    shifted = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), shifted.reshape(-1), ignore_index=-100)
