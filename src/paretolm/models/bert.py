"""SpeedLimit's homogeneous BERT encoder ``(e, h, f)``: ``n_layer`` post-LN encoder layers of width
``d_model`` with bidirectional attention and an FFN of width ``d_inner``, trained with masked
language modelling.

Layout follows BERT (Devlin et al., 2019): token + learned position + token-type embeddings
(two types), summed and LayerNorm-ed; each layer ``x = LN(x + Attn(x)); x = LN(x + FFN(x))``
with GELU; the MLM head is dense + GELU + LayerNorm, then a decoder tied to the token embedding
plus a per-token bias. Counting convention: the encoder layers are the "decoder" part; the
embeddings with their LayerNorm and the MLM head are embedding-side.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.bert import TYPE_VOCAB_SIZE
from paretolm.core.blocks import Block
from paretolm.models.layers import FeedForward, LMOutput, SelfAttention, init_gpt2

LN_EPS = 1e-12  # BERT's LayerNorm epsilon


class PostLNEncoderLayer(nn.Module):
    def __init__(self, block: Block, dropout: float, attn_dropout: float):
        super().__init__()
        d = block.d_model
        self.attn = SelfAttention.of(d, block.attention, dropout, attn_dropout)
        self.ln_1 = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = FeedForward.of(d, block.ffn, dropout)
        self.ln_2 = nn.LayerNorm(d, eps=LN_EPS)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.ln_1(x + self.attn(x, attn_mask))
        return self.ln_2(x + self.ffn(x))


class BertMLM(nn.Module):
    embedding_module, head_module = "word", "decoder"

    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone != "bert":
            raise ValueError(f"backbone: BertMLM needs a 'bert' spec, got {spec.backbone!r}")
        self.spec = spec
        d = spec.d_model
        self.word = nn.Embedding(spec.vocab_size, d)
        self.position = nn.Embedding(spec.max_seq_len, d)
        self.token_type = nn.Embedding(TYPE_VOCAB_SIZE, d)
        self.emb_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(PostLNEncoderLayer(b, dropout, attn_dropout) for b in spec.block_view())
        self.head_dense = nn.Linear(d, d)
        self.head_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.decoder = nn.Linear(d, spec.vocab_size, bias=True)
        init_gpt2(self, spec.n_layer)
        if spec.tie_weights:
            self.decoder.weight = self.word.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> LMOutput:
        """``attention_mask`` (batch, seq), 1 for real tokens and 0 for padding, hides padding keys;
        the loss is the mean cross-entropy over positions whose label is not -100 (no shift)."""
        b, t = input_ids.shape
        if t > self.spec.max_seq_len:
            raise ValueError(f"input_ids: sequence length {t} exceeds max_seq_len={self.spec.max_seq_len}")
        x = self.word(input_ids) + self.position(torch.arange(t, device=input_ids.device))
        if token_type_ids is None:
            x = x + self.token_type.weight[0]
        else:
            x = x + self.token_type(token_type_ids)
        x = self.drop(self.emb_ln(x))
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != (b, t):
                raise ValueError(f"attention_mask: expected shape {(b, t)}, got {tuple(attention_mask.shape)}")
            mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        logits = self.decoder(self.head_ln(F.gelu(self.head_dense(x))))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100)
        return LMOutput(logits, loss)


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    p: float = 0.15,
    special_tokens_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: pick each token with probability ``p`` (never one flagged in
    ``special_tokens_mask``); of the picked, 80 % become ``mask_token_id``, 10 % a uniformly random
    token and 10 % stay. Returns ``(inputs, labels)`` with labels -100 where nothing is predicted."""
    if not 0 < p < 1:
        raise ValueError(f"p: masking probability must be in (0, 1), got {p}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id: {mask_token_id} is not in [0, vocab_size={vocab_size})")
    picked = torch.rand(input_ids.shape, generator=generator) < p
    if special_tokens_mask is not None:
        picked &= ~special_tokens_mask.bool()
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator, dtype=input_ids.dtype)
    inputs = input_ids.clone()
    inputs[picked & (roll < 0.8)] = mask_token_id
    swap = picked & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels
