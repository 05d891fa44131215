"""Adaptive input embedding and adaptive log-softmax with weight tying (LTS / Transformer-XL layout).

The vocabulary is cut into clusters at ``cutoffs``: cluster ``i`` covers ids ``[c_{i-1}, c_i)`` and
is embedded with width ``d_embed // div_val**i``, then projected to ``d_model``. Parameters, as in
LTS's ``AdaptiveEmbedding`` / ``ProjectedAdaptiveLogSoftmax``:

* ``div_val == 1``: one ``vocab x d_embed`` table, plus one ``d_model x d_embed`` projection only
  when ``d_embed != d_model``;
* ``div_val > 1``: one table and one projection per cluster (the projection exists even when the
  width equals ``d_model``).

The softmax side mirrors it: per-cluster output weights and biases, a ``n_clusters x d_embed``
cluster weight and ``n_clusters`` bias for the head. With ``tie_weights`` the output weights *and*
the projections are the embedding's own tensors (LTS's ``tie_weight`` with every ``tie_projs`` set);
the biases and cluster parameters always belong to the softmax. Tied tensors are read from the
embedding at call time rather than registered twice, so ``state_dict`` holds each tensor once.

Both modules compute every cluster for every position (masked), so their FLOPs do not depend on
the data: that is what ``paretolm.core.counting`` counts.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def cluster_bounds(vocab_size: int, cutoffs: tuple[int, ...] | list[int]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` for each cluster: ``cutoffs`` then ``vocab_size`` as ends."""
    ends = [*cutoffs, vocab_size]
    starts = [0, *cutoffs]
    return list(zip(starts, ends, strict=True))


def cluster_widths(d_embed: int, div_val: int, n_clusters: int) -> list[int]:
    return [d_embed // div_val**i for i in range(n_clusters)] if div_val > 1 else [d_embed]


class AdaptiveEmbedding(nn.Module):
    """Token embedding with per-cluster widths and projections to ``d_model``.

    ``scale`` multiplies the output by ``sqrt(d_model)`` (Transformer-XL does; GPT-2 does not).
    """

    def __init__(self, vocab_size: int, d_embed: int, d_model: int, cutoffs=(), div_val: int = 1, scale: bool = False):
        super().__init__()
        self.vocab_size, self.d_embed, self.d_model, self.div_val = vocab_size, d_embed, d_model, div_val
        self.bounds = cluster_bounds(vocab_size, tuple(cutoffs)) if div_val > 1 else [(0, vocab_size)]
        self.widths = cluster_widths(d_embed, div_val, len(self.bounds))
        self.emb_scale = d_model**0.5 if scale else 1.0
        self.emb_layers = nn.ModuleList(
            nn.Embedding(end - start, w) for (start, end), w in zip(self.bounds, self.widths, strict=True)
        )
        self.emb_projs = nn.ParameterList()
        if div_val > 1 or d_embed != d_model:
            for w in self.widths:
                self.emb_projs.append(nn.Parameter(torch.empty(d_model, w).normal_(0.0, 0.02)))

    def projection(self, i: int) -> torch.Tensor | None:
        return self.emb_projs[i] if len(self.emb_projs) else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if len(self.emb_layers) == 1:
            out = self.emb_layers[0](input_ids)
            if len(self.emb_projs):
                out = F.linear(out, self.emb_projs[0])
        else:
            out = None
            for i, (start, end) in enumerate(self.bounds):
                inside = (input_ids >= start) & (input_ids < end)
                local = (input_ids - start).clamp(0, end - start - 1)
                part = F.linear(self.emb_layers[i](local), self.emb_projs[i])
                part = part * inside.unsqueeze(-1).to(part.dtype)
                out = part if out is None else out + part
        return out * self.emb_scale if self.emb_scale != 1.0 else out


class ProjectedLMHead(nn.Module):
    """Plain LM head (no bias): optional ``d_model -> d_embed`` projection, then the vocabulary
    matrix, both taken from ``embedding`` when tied. Returns raw logits."""

    def __init__(self, vocab_size: int, d_embed: int, d_model: int, embedding: AdaptiveEmbedding | None):
        super().__init__()
        self.__dict__["_tied"] = embedding  # not a submodule: the parent owns it
        if embedding is None:
            self.weight = nn.Parameter(torch.empty(vocab_size, d_embed).normal_(0.0, 0.02))
            self.proj = nn.Parameter(torch.empty(d_model, d_embed).normal_(0.0, 0.02)) if d_embed != d_model else None
        elif embedding.div_val != 1:
            raise ValueError("div_val: a plain LM head ties only to a div_val=1 embedding")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        tied = self._tied
        weight = tied.emb_layers[0].weight if tied is not None else self.weight
        proj = tied.projection(0) if tied is not None else self.proj
        if proj is not None:
            h = F.linear(h, proj.t())
        return F.linear(h, weight)


class AdaptiveLogSoftmax(nn.Module):
    """Adaptive softmax returning full-vocabulary log-probabilities.

    The head scores the first cluster's tokens plus one entry per tail cluster; a tail token's
    log-probability is its cluster entry's head log-probability plus its log-softmax within the
    cluster. The output rows are normalised log-probabilities over the whole vocabulary, so
    ``F.cross_entropy`` on them (whose ``log_softmax`` leaves them unchanged) is the NLL.
    """

    def __init__(
        self,
        vocab_size: int,
        d_embed: int,
        d_model: int,
        cutoffs=(),
        div_val: int = 1,
        embedding: AdaptiveEmbedding | None = None,
    ):
        super().__init__()
        self.vocab_size, self.d_embed, self.d_model, self.div_val = vocab_size, d_embed, d_model, div_val
        self.bounds = cluster_bounds(vocab_size, tuple(cutoffs))
        self.n_clusters = len(self.bounds) - 1
        self.__dict__["_tied"] = embedding
        if embedding is not None and (
            embedding.div_val != div_val
            or embedding.d_embed != d_embed
            or (div_val > 1 and embedding.bounds != self.bounds)
        ):
            raise ValueError("tie_weights: embedding and softmax disagree on div_val, d_embed or cutoffs")
        if div_val == 1:
            self.widths = [d_embed]
            self.out_biases = nn.ParameterList([nn.Parameter(torch.zeros(vocab_size))])
        else:
            self.widths = cluster_widths(d_embed, div_val, len(self.bounds))
            self.out_biases = nn.ParameterList(nn.Parameter(torch.zeros(e - s)) for s, e in self.bounds)
        if self.n_clusters:
            self.cluster_weight = nn.Parameter(torch.empty(self.n_clusters, d_embed).normal_(0.0, 0.02))
            self.cluster_bias = nn.Parameter(torch.zeros(self.n_clusters))
        if embedding is None:
            sizes = [vocab_size] if div_val == 1 else [e - s for s, e in self.bounds]
            self.out_weights = nn.ParameterList(
                nn.Parameter(torch.empty(n, w).normal_(0.0, 0.02)) for n, w in zip(sizes, self.widths, strict=True)
            )
            self.out_projs = nn.ParameterList()
            if div_val > 1 or d_embed != d_model:
                for w in self.widths:
                    self.out_projs.append(nn.Parameter(torch.empty(d_model, w).normal_(0.0, 0.02)))

    @torch.no_grad()
    def reset_cluster_bias(self) -> None:
        """Cluster bias ``log(cluster size)``: with near-zero logits the model then starts at the
        uniform distribution over the whole vocabulary (initial loss ``ln(vocab_size)``), not at a
        uniform head, which would over-penalise tail tokens. Call after any generic bias init."""
        if self.n_clusters:
            sizes = torch.tensor([float(e - s) for s, e in self.bounds[1:]], device=self.cluster_bias.device)
            self.cluster_bias.copy_(sizes.log())

    def _weight(self, i: int) -> torch.Tensor:
        return self._tied.emb_layers[i].weight if self._tied is not None else self.out_weights[i]

    def _proj(self, i: int) -> torch.Tensor | None:
        if self._tied is not None:
            return self._tied.projection(i)
        return self.out_projs[i] if len(self.out_projs) else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(..., vocab_size)`` for hidden states ``(..., d_model)``."""
        if self.div_val == 1:
            proj = self._proj(0)
            hp = F.linear(h, proj.t()) if proj is not None else h
            full = F.linear(hp, self._weight(0), self.out_biases[0])
            if not self.n_clusters:
                return F.log_softmax(full.float(), dim=-1)
            head_tokens = full[..., : self.bounds[0][1]]
            tails = [full[..., s:e] for s, e in self.bounds[1:]]
            cluster = F.linear(hp, self.cluster_weight, self.cluster_bias)
        else:
            logits = []
            for i in range(len(self.bounds)):
                proj = self._proj(i)
                hp = F.linear(h, proj.t())
                logits.append(F.linear(hp, self._weight(i), self.out_biases[i]))
                if i == 0 and self.n_clusters:
                    cluster = F.linear(hp, self.cluster_weight, self.cluster_bias)
            if not self.n_clusters:
                return F.log_softmax(logits[0].float(), dim=-1)
            head_tokens, tails = logits[0], logits[1:]
        head = F.log_softmax(torch.cat([head_tokens, cluster], dim=-1).float(), dim=-1)
        shortlist = self.bounds[0][1]
        parts = [head[..., :shortlist]]
        for i, tail in enumerate(tails):
            parts.append(head[..., shortlist + i : shortlist + i + 1] + F.log_softmax(tail.float(), dim=-1))
        return torch.cat(parts, dim=-1)
