"""MeRino's adaptive block-wise decoder (Zhao et al., "MeRino: Entropy-Driven Design for Generative
Language Models on IoT Devices", AAAI 2025).

MeRino replaces L homogeneous layers by N transformer blocks, block i having its own width E_i,
FFN ratio R_i and depth L_i, with the layers of a block sharing one set of parameters. Our reading
of the paper's design, and the choices it leaves open:

* block i is one pre-LN GPT-style layer (LayerNorm, causal self-attention with ``E_i / d_head``
  heads, LayerNorm, GELU FFN of width ``round(E_i * R_i)``) applied ``L_i`` times: the *same*
  module object, so its parameters exist once and depth adds compute but no parameters;
* where the width grows between blocks a ``Linear(E_{i-1}, E_i)`` (with bias) carries the residual
  stream into the wider block; blocks of equal width follow each other directly;
* token and learned positional embeddings have width ``E_1``; a final LayerNorm at ``E_N``;
* with ``tie_weights`` the LM head is the token embedding, so when ``E_N != E_1`` a bias-free
  ``Linear(E_N, E_1)`` projects back first (as OPT-350M's ``project_out``); without tying the head
  is a ``Linear(E_N, vocab)`` and no projection is needed.

Counting convention (``paretolm.core.backbones.merino``): the shared layers, the inter-block projections and the
final LayerNorm are decoder parameters; embeddings, the output projection and any untied head are
embedding-side, so ``decoder_params`` does not depend on how the head is built.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from paretolm.core.arch import ArchSpec
from paretolm.core.blocks import Block
from paretolm.models.layers import Cache, LMOutput, PreLNBlock, TiedLMHead, init_gpt2, next_token_loss, past_length


class MerinoBlockModule(nn.Module):
    """One MeRino block: an optional width projection, then one layer applied ``n_layer`` times."""

    def __init__(self, d_in: int, block: Block, dropout: float, attn_dropout: float):
        super().__init__()
        self.transition = nn.Linear(d_in, block.d_model) if d_in != block.d_model else None
        self.layer = PreLNBlock(block, dropout=dropout, attn_dropout=attn_dropout)
        self.n_layer = block.times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transition is not None:
            x = self.transition(x)
        for _ in range(self.n_layer):
            x = self.layer(x)
        return x

    def forward_cached(self, x: torch.Tensor, past: list[Cache] | None) -> tuple[torch.Tensor, list[Cache]]:
        """``forward`` with a key/value cache: one entry per application of the shared layer
        (the weights are shared, the keys and values each application computes are not)."""
        if self.transition is not None:
            x = self.transition(x)
        present = []
        for i in range(self.n_layer):
            x, kv = self.layer.forward_cached(x, past[i] if past else None)
            present.append(kv)
        return x, present


class MerinoLM(nn.Module):
    embedding_module, head_module = "wte", "lm_head"

    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone != "merino":
            raise ValueError(f"backbone: MerinoLM needs a 'merino' spec, got {spec.backbone!r}")
        self.spec = spec
        e_first, e_last = spec.blocks[0].d_model, spec.blocks[-1].d_model
        self.wte = nn.Embedding(spec.vocab_size, e_first)
        self.wpe = nn.Embedding(spec.max_seq_len, e_first)
        self.drop = nn.Dropout(dropout)
        widths = [e_first] + [b.d_model for b in spec.blocks]
        self.blocks = nn.ModuleList(
            MerinoBlockModule(widths[i], b, dropout, attn_dropout) for i, b in enumerate(spec.block_view())
        )
        self.ln_f = nn.LayerNorm(e_last)
        if spec.tie_weights:
            self.project_out = nn.Linear(e_last, e_first, bias=False) if e_last != e_first else None
            self.lm_head = TiedLMHead(self.wte)
        else:
            self.project_out = None
            self.lm_head = nn.Linear(e_last, spec.vocab_size, bias=False)
        # Residual scaling follows the applied depth: a shared layer still adds L_i residual branches.
        init_gpt2(self, spec.num_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        past: list[Cache] | None = None,
        use_cache: bool = False,
    ) -> LMOutput:
        """``past``/``use_cache``: the decoding cache, one (keys, values) entry per application of
        a block's layer, in order (as ``GPT2LM.forward``)."""
        start, t = past_length(past), input_ids.size(1)
        if start + t > self.spec.max_seq_len:
            raise ValueError(f"input_ids: sequence length {start + t} exceeds max_seq_len={self.spec.max_seq_len}")
        pos = torch.arange(start, start + t, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        present = None
        if past is None and not use_cache:
            for block in self.blocks:
                x = block(x)
        else:
            present, done = [], 0
            for block in self.blocks:
                x, kv = block.forward_cached(x, past[done : done + block.n_layer] if past else None)
                present.extend(kv)
                done += block.n_layer
        x = self.ln_f(x)
        if self.project_out is not None:
            x = self.project_out(x)
        logits = self.lm_head(x)
        loss = next_token_loss(logits, labels) if labels is not None else None
        return LMOutput(logits, loss, past=present if use_cache else None)
