"""PAR's published design rules, checked on a ``par`` spec's layer string (docs/methods.md)."""

from __future__ import annotations

import math

from paretolm.core.arch import ArchSpec


def par_design_rules(
    spec: ArchSpec, attention_span: float = 2 / 3, max_attention_share: float = 1 / 3, max_ffn_run: int = 5
) -> list[str]:
    """Which of PAR's design rules the layer string of ``spec`` breaks (empty list: none).

    PAR's search on Transformer-XL led to two findings, summarised as "self-attention blocks may
    only be useful in the first two-thirds of layers in a network, and a 1:5 ratio of
    self-attention to feed-forward layers is sufficient"; its models interleave one attention
    sub-layer with a few feed-forward ones early on and end with feed-forward only (the base model
    is ``(sfff)x6 (f)x8``). We check, over the non-identity sub-layers (identity adds no depth):

    1. *span*: no self-attention after the first ``attention_span`` (2/3) of the depth;
    2. *share*: at most ``max_attention_share`` (1/3) of the sub-layers are self-attention (PAR
       removes ~63 % of Transformer-XL's attention, whose plain ``sf`` stack has 1/2; the base
       model has 6/32), and at least one is (a stack without attention sees no context);
    3. *interleaving*: inside the attention span, no run of more than ``max_ffn_run`` (5, from
       the 1:5 ratio) feed-forward sub-layers without attention, the leading run included. This
       is where the 1:5 ratio applies: over the whole depth, 1:5 within the first 2/3 and
       feed-forward only after it give an attention share of about 1/9.
    """
    if spec.backbone != "par":
        raise ValueError(f"backbone: design rules apply to 'par' specs, got {spec.backbone!r}")
    kinds = [k for k in spec.layers if k != "i"]
    where = [i for i, k in enumerate(spec.layers) if k != "i"]  # index in the full string
    depth = len(kinds)
    if depth == 0:
        return ["share: the network has only identity sub-layers"]
    broken: list[str] = []
    span_end = math.ceil(attention_span * depth - 1e-9)
    late = [where[p] for p, k in enumerate(kinds) if k == "s" and p >= span_end]
    if late:
        broken.append(
            f"span: self-attention at sub-layer(s) {late} lies past the first {attention_span:.3g} "
            f"of the depth ({span_end} of {depth} non-identity sub-layers)"
        )
    share = kinds.count("s") / depth
    if share == 0:
        broken.append("share: no self-attention sub-layer, so no token sees its context")
    elif share > max_attention_share + 1e-9:
        broken.append(
            f"share: {kinds.count('s')} of {depth} sub-layers are self-attention ({share:.3f}), "
            f"more than {max_attention_share:.3f}"
        )
    run, run_start = 0, 0
    for p in range(span_end):
        if kinds[p] == "s":
            run = 0
            continue
        if run == 0:
            run_start = p
        run += 1
        if run == max_ffn_run + 1:
            broken.append(
                f"interleaving: more than {max_ffn_run} feed-forward sub-layers without attention "
                f"from sub-layer {where[run_start]} inside the attention span"
            )
    return broken
