"""LTS's Transformer-XL backbone: relative positional attention with segment memory.

Each layer is a ``RelPartialLearnableMultiHeadAttn`` (fused ``qkv_net``, ``r_net`` projecting the
sinusoidal relative positions, ``o_net``, all without bias; per-layer ``r_w_bias`` and ``r_r_bias``
of shape ``(n_head, d_head)``, as LTS keeps them per layer because heads differ between layers)
followed by a ReLU position-wise FFN; each sub-layer has its own LayerNorm, applied after the
residual (post-LN, the default) or before the sub-layer (``pre_lnorm``). There is no final
LayerNorm. Input: adaptive embedding scaled by ``sqrt(d_model)``; output: adaptive log-softmax
(``models.adaptive``), so ``logits`` are full-vocabulary log-probabilities and cross-entropy on them
is the NLL.

Attention scores are ``(q + r_w_bias) k^T + rel_shift((q + r_r_bias) r^T)``: the content term runs
inside ``scaled_dot_product_attention`` and the positional term enters it as an additive mask
together with the causal mask.

Memory: ``forward(input_ids, labels=None, mems=None)`` takes the previous segment's ``mems`` (one
``(batch, m, d_model)`` tensor per layer: that layer's input states) and returns the updated ones
(the last ``mem_len`` states, detached) in ``LMOutput.mems``; ``mem_len == 0`` keeps no memory.
Decoding uses the same memory as its cache: ``forward(input_ids, past=..., use_cache=True)`` returns
it in ``LMOutput.past`` (the last ``mem_len`` states; every state when ``mem_len == 0``, so a model
without memory still decodes over its whole context), which the next call takes as ``past``.
``decoder_parameters()`` (the layers, r biases included) is what ``counting`` calls the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core.arch import ArchSpec
from paretolm.models.adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax
from paretolm.models.layers import LMOutput, init_gpt2, next_token_loss


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """Align ``x[..., i, j]`` (scores against positions ``klen-1 ... 0``) to key ``j`` of query ``i``."""
    *lead, q, k = x.shape
    padded = torch.cat([x.new_zeros(*lead, q, 1), x], dim=-1).view(*lead, k + 1, q)
    return padded[..., 1:, :].reshape(*lead, q, k)


class RelPartialLearnableAttention(nn.Module):
    role = "attn"

    def __init__(self, d_model: int, n_head: int, d_head: int, dropout: float, attn_dropout: float, pre_lnorm: bool):
        super().__init__()
        self.n_head, self.d_head, self.pre_lnorm = n_head, d_head, pre_lnorm
        inner = n_head * d_head
        self.qkv_net = nn.Linear(d_model, 3 * inner, bias=False)
        self.fused_rows = {"qkv_net": (inner,) * 3}  # Q, K, V rows: how the supernet slices it
        self.r_net = nn.Linear(d_model, inner, bias=False)
        self.o_net = nn.Linear(inner, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)
        self.r_w_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.r_r_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = attn_dropout
        self.scale = 1.0 / math.sqrt(d_head)

    def forward(self, w: torch.Tensor, r: torch.Tensor, mem: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = w.shape
        cat = torch.cat([mem, w], dim=1) if mem is not None and mem.size(1) else w
        klen, m = cat.size(1), cat.size(1) - t
        x = self.layer_norm(cat) if self.pre_lnorm else cat
        q, k, v = self.qkv_net(x).split(self.n_head * self.d_head, dim=-1)
        q = q[:, -t:].view(b, t, self.n_head, self.d_head).transpose(1, 2)
        k = k.view(b, klen, self.n_head, self.d_head).transpose(1, 2)
        v = v.view(b, klen, self.n_head, self.d_head).transpose(1, 2)
        r_k = self.r_net(r).view(klen, self.n_head, self.d_head).permute(1, 2, 0)  # (H, d_head, klen)
        bd = rel_shift(torch.matmul(q + self.r_r_bias[:, None, :], r_k))  # (B, H, T, klen)
        # key j is in query i's future when j > m + i; aranges (not triu with an offset) keep the
        # lengths symbolic in an ONNX export
        future = torch.arange(klen, device=w.device)[None, :] > torch.arange(t, device=w.device)[:, None] + m
        bias = (bd * self.scale).masked_fill(future, float("-inf"))
        y = F.scaled_dot_product_attention(
            q + self.r_w_bias[:, None, :],
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_dropout if self.training else 0.0,
            scale=self.scale,
        )
        out = self.drop(self.o_net(y.transpose(1, 2).reshape(b, t, self.n_head * self.d_head)))
        return w + out if self.pre_lnorm else self.layer_norm(w + out)


class PositionwiseFF(nn.Module):
    role = "ffn"

    def __init__(self, d_model: int, d_inner: int, dropout: float, pre_lnorm: bool):
        super().__init__()
        self.fc = nn.Linear(d_model, d_inner)
        self.proj = nn.Linear(d_inner, d_model)
        self.layer_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.pre_lnorm = pre_lnorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer_norm(x) if self.pre_lnorm else x
        out = self.drop(self.proj(self.drop(F.relu(self.fc(h)))))
        return x + out if self.pre_lnorm else self.layer_norm(x + out)


class RelDecoderLayer(nn.Module):
    def __init__(
        self, d_model: int, n_head: int, d_head: int, d_inner: int, dropout: float, attn_dropout: float, pre_lnorm: bool
    ):
        super().__init__()
        self.attn = RelPartialLearnableAttention(d_model, n_head, d_head, dropout, attn_dropout, pre_lnorm)
        self.ff = PositionwiseFF(d_model, d_inner, dropout, pre_lnorm)

    def forward(self, x: torch.Tensor, r: torch.Tensor, mem: torch.Tensor | None = None) -> torch.Tensor:
        return self.ff(self.attn(x, r, mem))


class TransformerXLLM(nn.Module):
    """Transformer-XL language model of LTS (see module docstring)."""

    embedding_module, head_module = "word_emb", "crit"
    # forward takes ``mems=`` and returns ``LMOutput.mems``: perplexity evaluation carries the memory
    # from segment to segment (``paretolm.validation.evaluation.memory_module``) when ``mem_len > 0``
    segment_memory = True

    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone != "transformer_xl":
            raise ValueError(f"backbone: TransformerXLLM builds transformer_xl specs, got {spec.backbone!r}")
        self.spec = spec
        d = spec.d_model
        self.mem_len = spec.mem_len
        self.word_emb = AdaptiveEmbedding(spec.vocab_size, spec.d_embed, d, spec.cutoffs, spec.div_val, scale=True)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            RelDecoderLayer(d, h, dh, f, dropout, attn_dropout, spec.pre_lnorm)
            for h, dh, f in zip(spec.n_head, spec.d_head, spec.d_inner, strict=True)
        )
        tied = self.word_emb if spec.tie_weights else None
        self.crit = AdaptiveLogSoftmax(spec.vocab_size, spec.d_embed, d, spec.cutoffs, spec.div_val, tied)
        init_gpt2(self, spec.n_layer)
        self.crit.reset_cluster_bias()

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters ``counting`` calls decoder parameters: every layer, r biases included."""
        yield from self.layers.parameters()

    def positions(self, klen: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Sinusoidal embeddings of relative distances ``klen-1 ... 0``: ``(klen, d_model)``."""
        # computed here, not kept as a buffer: loaders that build on the meta device leave
        # non-persistent buffers uninitialised
        d = self.spec.d_model
        inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d, 2.0, device=device) / d))
        pos = torch.arange(klen - 1, -1, -1.0, device=device)
        angles = pos[:, None] * inv_freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        mems: list[torch.Tensor] | None = None,
        past: list[torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> LMOutput:
        if past is not None:
            mems = past
        if mems is not None and len(mems) != len(self.layers):
            raise ValueError(f"mems: expected {len(self.layers)} tensors (one per layer), got {len(mems)}")
        x = self.drop(self.word_emb(input_ids))
        m = mems[0].size(1) if mems else 0
        r = self.drop(self.positions(m + input_ids.size(1), x.device, x.dtype))
        inputs = []
        for i, layer in enumerate(self.layers):
            inputs.append(x)
            x = layer(x, r, mems[i] if mems else None)
        logits = self.crit(self.drop(x))
        loss = next_token_loss(logits, labels) if labels is not None else None
        new_mems = None
        if self.mem_len > 0:
            with torch.no_grad():
                new_mems = [
                    (torch.cat([mems[i], h], dim=1) if mems else h)[:, -self.mem_len :].detach()
                    for i, h in enumerate(inputs)
                ]
        present = None
        if use_cache:
            present = new_mems or [torch.cat([mems[i], h], dim=1) if mems else h for i, h in enumerate(inputs)]
        return LMOutput(logits=logits, loss=loss, mems=new_mems, past=present)
