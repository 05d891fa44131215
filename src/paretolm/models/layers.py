"""Building blocks the backbones share, built from the block descriptor (``paretolm.core.blocks``):
attention on ``scaled_dot_product_attention`` (grouped-query, rotary positions), the plain or gated
feed-forward, LayerNorm or RMSNorm, the pre-norm block, GPT-2 initialisation and the output record."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core import blocks

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


class RMSNorm(nn.Module):
    """Root-mean-square norm (Llama): ``weight * x / sqrt(mean(x^2) + eps)``, computed in float32
    as Hugging Face's ``LlamaRMSNorm`` does, so exported models give the same logits."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def make_norm(kind: str, d_model: int) -> nn.Module:
    """The norm a block descriptor names: ``layernorm`` or ``rmsnorm``."""
    return RMSNorm(d_model) if kind == "rmsnorm" else nn.LayerNorm(d_model)


def rotate(x: torch.Tensor, start: int | torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding of ``x`` (batch, heads, tokens, head_dim) for positions
    ``start ...``, in Hugging Face Llama's half-split layout (the first half of each head pairs
    with the second). Computed on the fly: no buffer, so meta-device builds need nothing filled."""
    t, dim = x.size(-2), x.size(-1)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=x.device).float() / dim))
    pos = torch.arange(t, device=x.device).float() + start
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    half = dim // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection (``qkv`` holds Q, K then V rows).

    ``n_head * d_head`` may differ from ``d_model`` (heterogeneous layers); ``n_kv_head`` below
    ``n_head`` is grouped-query attention (each key/value head serves ``n_head / n_kv_head`` query
    heads; the cache keeps the unshared heads); ``rope_theta`` applies rotary positions to queries
    and keys. Causal unless ``causal=False`` (BERT). ``of`` builds one from a block descriptor.
    """

    role = "attn"  # what the data-dependent proxies score it as

    def __init__(
        self,
        d_model: int,
        n_head: int,
        d_head: int | None = None,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        causal: bool = True,
        bias: bool = True,
        n_kv_head: int | None = None,
        rope_theta: float | None = None,
    ):
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_kv_head or n_head
        self.d_head = d_head or d_model // n_head
        inner, kv = n_head * self.d_head, self.n_kv_head * self.d_head
        self.splits = (inner, kv, kv)
        self.fused_rows = {"qkv": self.splits}  # Q, K, V rows of qkv: how the supernet slices it
        self.qkv = nn.Linear(d_model, inner + 2 * kv, bias=bias)
        self.proj = nn.Linear(inner, d_model, bias=bias)
        self.attn_dropout = attn_dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.causal = causal
        self.rope_theta = rope_theta

    @classmethod
    def of(cls, d_model: int, a: blocks.Attention, dropout: float = 0.0, attn_dropout: float = 0.0) -> SelfAttention:
        if a.positions == "relative":
            raise ValueError("positions: relative attention is Transformer-XL's own module")
        return cls(
            d_model,
            a.n_head,
            a.head_dim,
            dropout,
            attn_dropout,
            causal=a.causal,
            bias=a.bias,
            n_kv_head=a.n_kv_head,
            rope_theta=a.rope_theta if a.positions == "rotary" else None,
        )

    def _qkv(self, x: torch.Tensor, start: int | torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(self.splits, dim=-1)
        q = q.view(b, t, self.n_head, self.d_head).transpose(1, 2)
        k = k.view(b, t, self.n_kv_head, self.d_head).transpose(1, 2)
        v = v.view(b, t, self.n_kv_head, self.d_head).transpose(1, 2)
        if self.rope_theta is not None:
            q, k = rotate(q, start, self.rope_theta), rotate(k, start, self.rope_theta)
        return q, k, v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        gqa = self.n_kv_head != self.n_head  # grouped-query: each key/value head serves a group of query heads
        if gqa and torch.onnx.is_in_onnx_export():  # the ONNX exporter cannot convert enable_gqa
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            gqa = False
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=self.causal and mask is None,
            enable_gqa=gqa,
        )
        b, _, t, _ = y.shape
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(b, t, self.n_head * self.d_head)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._qkv(x, 0)
        return self._attend(q, k, v, attn_mask)

    def forward_cached(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Causal attention of ``x``'s tokens over the cached keys/values ``past`` and their own;
        returns the output and the cache extended by ``x``'s keys and values."""
        t = x.size(1)
        q, k, v = self._qkv(x, past[0].size(2) if past is not None else 0)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        klen = k.size(2)
        # query i sits at position klen - t + i and sees every key up to it; built from aranges
        # (not tril with an offset) so an ONNX export keeps the lengths symbolic
        keys = torch.arange(klen, device=x.device)
        queries = torch.arange(t, device=x.device) + (klen - t)
        mask = keys[None, :] <= queries[:, None]
        return self._attend(q, k, v, mask), (k, v)


ACTIVATIONS = {"gelu_tanh": lambda: nn.GELU(approximate="tanh"), "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class FeedForward(nn.Module):
    """``proj(act(fc(x)))``, or with ``gated`` ``proj(act(gate(x)) * fc(x))`` (SwiGLU with silu)."""

    role = "ffn"

    def __init__(
        self,
        d_model: int,
        d_inner: int,
        activation: str = "gelu_tanh",
        dropout: float = 0.0,
        gated: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        self.fc = nn.Linear(d_model, d_inner, bias=bias)
        self.gate = nn.Linear(d_model, d_inner, bias=bias) if gated else None
        self.proj = nn.Linear(d_inner, d_model, bias=bias)
        self.act = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def of(cls, d_model: int, f: blocks.FeedForward, dropout: float = 0.0) -> FeedForward:
        return cls(d_model, f.d_inner, f.activation, dropout, gated=f.gated, bias=f.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        h = self.act(self.gate(x)) * h if self.gate is not None else self.act(h)
        return self.dropout(self.proj(h))


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
    """Pre-norm decoder block of a block descriptor: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, block: blocks.Block, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if block.attention is None or block.ffn is None or not block.pre_norm:
            raise ValueError("block: PreLNBlock needs a pre-norm block with attention and a feed-forward part")
        d = block.d_model
        self.ln_1 = make_norm(block.norm, d)
        self.attn = SelfAttention.of(d, block.attention, dropout, attn_dropout)
        self.ln_2 = make_norm(block.norm, d)
        self.mlp = FeedForward.of(d, block.ffn, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def forward_cached(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` with the attention's key/value cache (see ``SelfAttention.forward_cached``)."""
        a, present = self.attn.forward_cached(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


def run_layers(
    layers: nn.ModuleList, x: torch.Tensor, past: list[Cache] | None, use_cache: bool
) -> tuple[torch.Tensor, list[Cache] | None]:
    """``x`` through a stack of ``PreLNBlock``s: plain, or with the decoding cache (one entry per
    layer) when ``past`` is given or ``use_cache`` is set."""
    if past is None and not use_cache:
        for layer in layers:
            x = layer(x)
        return x, None
    present = []
    for i, layer in enumerate(layers):
        x, kv = layer.forward_cached(x, past[i] if past else None)
        present.append(kv)
    return x, present


def init_gpt2(module: nn.Module, n_layer: int, std: float = 0.02) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by
    1/sqrt(2 * n_layer). A model on the meta device (shapes only, as the supernet builds its
    candidates) has no values to set."""
    for name, p in module.named_parameters():
        if p.is_meta:
            return
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
