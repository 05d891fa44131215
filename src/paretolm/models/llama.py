"""The Llama-family decoder (``llama`` specs): token embedding, pre-norm blocks of the block
descriptor (RMSNorm, grouped-query attention with rotary positions, SwiGLU, no biases), a final
RMSNorm and an LM head tied to the embedding or not. The same computation as Hugging Face's
``LlamaForCausalLM`` (``paretolm.export`` converts homogeneous specs to it, logits equal).

Decoding: ``forward(input_ids, past=..., use_cache=True)`` takes and returns the keys and values of
each layer (the key/value heads, before grouped-query sharing), as every causal backbone does.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.llama import NORM_EPS
from paretolm.models.layers import (
    Cache,
    LMOutput,
    PreLNBlock,
    RMSNorm,
    TiedLMHead,
    init_gpt2,
    next_token_loss,
    past_length,
    run_layers,
)


class LlamaLM(nn.Module):
    """The ``llama`` backbone (see module docstring)."""

    embedding_module, head_module = "wte", "lm_head"  # read by the data-dependent proxies

    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone != "llama":
            raise ValueError(f"backbone: LlamaLM builds llama specs, got {spec.backbone!r}")
        self.spec = spec
        self.wte = nn.Embedding(spec.vocab_size, spec.d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(PreLNBlock(b, dropout, attn_dropout) for b in spec.block_view())
        self.ln_f = RMSNorm(spec.d_model, NORM_EPS)
        if spec.tie_weights:
            self.lm_head = TiedLMHead(self.wte)
        else:
            self.lm_head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        init_gpt2(self, spec.n_layer)

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters ``counting`` calls decoder parameters: every block and the final norm."""
        yield from self.layers.parameters()
        yield from self.ln_f.parameters()

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        past: list[Cache] | None = None,
        use_cache: bool = False,
    ) -> LMOutput:
        start, t = past_length(past), input_ids.size(1)
        if start + t > self.spec.max_seq_len:
            raise ValueError(f"input_ids: {start + t} tokens exceed max_seq_len={self.spec.max_seq_len}")
        x = self.drop(self.wte(input_ids))
        x, present = run_layers(self.layers, x, past, use_cache)
        logits = self.lm_head(self.ln_f(x))
        loss = next_token_loss(logits, labels) if labels is not None else None
        return LMOutput(logits=logits, loss=loss, past=present if use_cache else None)
