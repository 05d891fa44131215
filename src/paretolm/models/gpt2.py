"""LTS's GPT-2 backbone and the OPT-style decoder: plain pre-LN Transformer decoders.

``gpt2``: learned positions (``max_seq_len`` of them, width ``d_model``), pre-LayerNorm blocks with
per-layer ``n_head`` / ``d_inner`` (heterogeneous), GELU FFN, final LayerNorm. The token embedding
has width ``d_embed`` (projected to ``d_model`` when different); with ``div_val > 1`` it is LTS's
adaptive input embedding and the output an adaptive softmax over ``cutoffs`` (``models.adaptive``),
whose ``logits`` are full-vocabulary log-probabilities: cross-entropy on them equals the NLL, so
``loss`` and any ``log_softmax`` of ``logits`` are the same as for plain logits. With ``div_val == 1``
the head is the (tied) embedding matrix and ``logits`` are raw scores.

``opt``: the same decoder with a ReLU FFN and a plain tied embedding of width ``d_model``.

Decoding: ``forward(input_ids, past=..., use_cache=True)`` takes the keys and values of the tokens
already seen (``LMOutput.past`` of the previous call) and returns them extended, so each generated
token costs one position's work; without ``past``/``use_cache`` the forward is the plain one.

The decoder part that ``counting`` calls ``decoder_params`` is ``layers`` plus ``ln_f``
(``decoder_parameters()``), as LTS counts it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from paretolm.core.arch import ArchSpec
from paretolm.models.adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax, ProjectedLMHead
from paretolm.models.layers import Cache, LMOutput, PreLNBlock, init_gpt2, next_token_loss, past_length, run_layers


class GPT2LM(nn.Module):
    """GPT-2 backbone of LTS (see module docstring)."""

    embedding_module, head_module = "wte", "head"  # read by the data-dependent proxies

    def __init__(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        if spec.backbone not in ("gpt2", "opt"):
            raise ValueError(f"backbone: {type(self).__name__} builds gpt2/opt specs, got {spec.backbone!r}")
        self.spec = spec
        d_model = spec.d_model
        div_val = spec.get("div_val") or 1  # opt has no adaptive genes
        d_embed = spec.get("d_embed") or d_model
        cutoffs = spec.get("cutoffs") or ()
        self.adaptive = div_val > 1
        self.wte = AdaptiveEmbedding(spec.vocab_size, d_embed, d_model, cutoffs, div_val)
        self.wpe = nn.Embedding(spec.max_seq_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(PreLNBlock(b, dropout, attn_dropout) for b in spec.block_view())
        self.ln_f = nn.LayerNorm(d_model)
        tied = self.wte if spec.tie_weights else None
        if self.adaptive:
            self.head = AdaptiveLogSoftmax(spec.vocab_size, d_embed, d_model, cutoffs, div_val, tied)
        else:
            self.head = ProjectedLMHead(spec.vocab_size, d_embed, d_model, tied)
        init_gpt2(self, spec.n_layer)
        if isinstance(self.head, AdaptiveLogSoftmax):
            self.head.reset_cluster_bias()

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters ``counting`` calls decoder parameters: every block and the final LayerNorm."""
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
        pos = torch.arange(start, start + t, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        x, present = run_layers(self.layers, x, past, use_cache)
        logits = self.head(self.ln_f(x))
        loss = next_token_loss(logits, labels) if labels is not None else None
        return LMOutput(logits=logits, loss=loss, past=present if use_cache else None)


class OPTLM(GPT2LM):
    """OPT-style decoder: as ``gpt2`` with a ReLU FFN (its blocks say so; the spec has no div_val /
    d_embed: a plain tied embedding)."""
