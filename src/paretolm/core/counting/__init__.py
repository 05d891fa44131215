"""Exact analytic parameter and FLOP counts, from a spec alone (no model is built).

``count(spec, seq_len)`` returns a ``Counts`` record from the spec's backbone plugin;
``decoder_params`` is LTS's non-embedding count: every parameter inside the decoder layers,
LayerNorms included, with token embeddings, positional embeddings and the softmax / LM head
excluded. The formulas live in ``counting.lts`` (gpt2, opt, transformer_xl) and
``counting.blocks`` (merino, par, bert); each is checked, to the parameter, against the
instantiated model in the tests. Conventions: docs/counting.md.
"""

from __future__ import annotations

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import Counts

DEFAULT_SEQ_LEN = 192


def count(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN) -> Counts:
    if seq_len <= 0:
        raise ValueError(f"seq_len: must be positive, got {seq_len}")
    return spec.plugin.count(spec, seq_len)


__all__ = ["DEFAULT_SEQ_LEN", "Counts", "count"]
