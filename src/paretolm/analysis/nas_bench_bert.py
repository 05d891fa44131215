"""Shape-only proxies on NAS-Bench-BERT (Serianni & Kalita, ACL 2023), next to the published ones.

The 500 encoders of ``BERT_benchmark.json`` mix, per layer, self-attention (SDP or WMA), linear
transforms (DFT/DCT, no weights) and depthwise-separable convolutions, with 1 or 3 stacked FFNs.
Our ``bert`` backbone is a homogeneous SDP encoder with one FFN per layer, so the proxies here are
computed from each layer's weight-matrix shapes (``sublayers``) rather than from a built model:
MeRino's entropy (``paretolm.proxies.entropy``) and the parameter count of those matrices. Both
are Spearman-correlated with GLUE beside the raw published proxy columns of
``BERT_results_activation.csv`` (``PUBLISHED``). See ``docs/proxies.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from scipy.stats import spearmanr

from paretolm.proxies.entropy import EntropySettings, entropy_mp, penalty

# Published proxy columns of BERT_results_activation.csv (raw, not the "Normalized" variants).
PUBLISHED = (
    "Number of Parameters",
    "Synaptic Diversity",
    "Synaptic Saliency",
    "Activation Distance",
    "Jacobian Score",
    "Head Importance",
    "Head Confidence",
    "Head Softmax Confidence",
)
OURS = ("merino_entropy", "matrix_params")

Layers = Sequence[Mapping[str, Any]]


class Sublayer(NamedTuple):
    """The dense matrices of one attention-like (``"mha"``) or feed-forward (``"ffn"``) part and the
    width its entropy penalty uses (``hidden`` for mixing, ``d_ff`` for an FFN)."""

    kind: str
    shapes: tuple[tuple[int, int], ...]
    width: int


def sublayers(layers: Layers, hidden: int) -> list[Sublayer]:
    """Our sub-layer view of a NAS-Bench-BERT encoder: SA (SDP or WMA) has Q, K, V, O
    ``hidden x hidden``; LT (DFT/DCT) has no trainable matrix; DSC's pointwise convolution is one
    ``hidden x hidden`` matrix (its depthwise kernel is per-channel, not a dense map); each of
    ``num_feed_forward`` stacked FFNs has ``hidden x d_ff`` and ``d_ff x hidden``."""
    subs = []
    for i, layer in enumerate(layers):
        op = layer.get("operation_type")
        if op == "SA":
            subs.append(Sublayer("mha", ((hidden, hidden),) * 4, hidden))
        elif op == "DSC":
            subs.append(Sublayer("mha", ((hidden, hidden),), hidden))
        elif op != "LT":
            raise ValueError(f"encoder_layers[{i}].operation_type: unknown operation {op!r}")
        f = int(layer["feed_forward_dimension"])
        for _ in range(int(layer["num_feed_forward"])):
            subs.append(Sublayer("ffn", ((hidden, f), (f, hidden)), f))
    return subs


def merino_entropy(layers: Layers, hidden: int, settings: EntropySettings | None = None) -> float:
    """MeRino's penalised, alpha-weighted entropy over ``sublayers`` (depth: the encoder's layers);
    the closed form of H(W) with ``settings.eps`` (default ``EntropySettings()``)."""
    cfg = settings or EntropySettings()
    total = 0.0
    for sub in sublayers(layers, hidden):
        value = sum(entropy_mp(m, n, cfg.eps) for m, n in sub.shapes)
        weight = cfg.alpha[0] if sub.kind == "mha" else cfg.alpha[1]
        total += weight * penalty(len(layers), sub.width, cfg.beta) * value
    return total


def matrix_params(layers: Layers, hidden: int) -> int:
    """Parameters of the dense matrices ``sublayers`` lists."""
    return sum(m * n for sub in sublayers(layers, hidden) for m, n in sub.shapes)


def representable(layers: Layers) -> bool:
    """Whether our homogeneous ``bert`` backbone (SDP self-attention, one FFN per layer) is exact."""
    keys = {(la["num_operation_heads"], la["feed_forward_dimension"], la["num_feed_forward"]) for la in layers}
    return (
        all(la["operation_type"] == "SA" and la.get("operation_parameter") == "SDP" for la in layers)
        and len(keys) == 1
        and next(iter(keys))[2] == 1
    )


def load_table(directory: str | os.PathLike, settings: EntropySettings | None = None) -> pd.DataFrame:
    """One row per NAS-Bench-BERT architecture: ``ID``, ``glue``, shape, our proxies and the
    published ones (``directory`` holds ``BERT_benchmark.json`` and ``BERT_results_activation.csv``)."""
    d = Path(directory)
    bench_path, csv_path = d / "BERT_benchmark.json", d / "BERT_results_activation.csv"
    for p in (bench_path, csv_path):
        if not p.is_file():
            raise ValueError(f"dir: {p.name} not found in {d}")
    cfg = settings or EntropySettings()
    rows = []
    for rec in json.loads(bench_path.read_text()):
        over = rec["hparams"]["model_hparam_overrides"]
        layers, hidden = over["nas_config"]["encoder_layers"], int(over["hidden_size"])
        rows.append(
            {
                "ID": int(rec["id"]),
                "glue": float(rec["scores"]["glue"]),
                "hidden_size": hidden,
                "n_layer": len(layers),
                "representable": representable(layers),
                "merino_entropy": merino_entropy(layers, hidden, cfg),
                "matrix_params": matrix_params(layers, hidden),
            }
        )
    published = pd.read_csv(csv_path)[["ID", *PUBLISHED]]
    return pd.DataFrame(rows).merge(published, on="ID", how="inner")


def src_with_glue(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Spearman correlation with GLUE of our proxies and of the published ones (infinite and
    missing values dropped per column), as ``{proxy, source, n, src_glue}`` records."""
    out = []
    for col, who in [(c, "paretolm") for c in OURS] + [(c, "published") for c in PUBLISHED]:
        ok = table[[col, "glue"]].replace([float("inf"), float("-inf")], float("nan")).dropna()
        src = spearmanr(ok[col], ok["glue"])[0] if len(ok) > 2 else float("nan")
        out.append({"proxy": col, "source": who, "n": len(ok), "src_glue": float(src)})
    return out


__all__ = [
    "OURS",
    "PUBLISHED",
    "Sublayer",
    "load_table",
    "matrix_params",
    "merino_entropy",
    "representable",
    "src_with_glue",
    "sublayers",
]
