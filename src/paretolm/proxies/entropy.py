"""MeRino's subspace entropy of a Transformer, from the spec alone (no model is built).

Each weight matrix of the backbone's layer view is a Gaussian random map whose entropy
``H(W) = E[log det(I + W W^T / eps^2)]`` comes from the Marchenko-Pastur closed form (``mp``,
cached per shape) or seeded Monte-Carlo SVD (``svd``); attention and FFN entropies get MeRino's
effectiveness penalty and weights. Conventions and the closed form: docs/proxies.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from paretolm.core.arch import ArchSpec
from paretolm.proxies import proxy


@dataclass(frozen=True)
class EntropySettings:
    """Knobs of the entropy proxy (config ``proxies.settings.merino_entropy``); the schema holds the
    defaults users see, these are the same for direct calls."""

    eps: float = 1.0
    alpha: tuple[float, float] = (0.6, 0.4)
    beta: float = 1.0 / 16.0
    method: str = "mp"  # "mp" (closed form) or "svd" (Monte-Carlo SVD)
    samples: int = 4  # SVD draws per shape (method "svd")
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", tuple(float(a) for a in self.alpha))
        if not self.eps > 0:
            raise ValueError(f"proxies.settings.merino_entropy.eps: must be positive, got {self.eps!r}")
        if len(self.alpha) != 2 or any(a < 0 for a in self.alpha):
            raise ValueError(
                f"proxies.settings.merino_entropy.alpha: need two non-negative weights, got {self.alpha!r}"
            )
        if self.beta < 0:
            raise ValueError(f"proxies.settings.merino_entropy.beta: must be non-negative, got {self.beta!r}")
        if self.method not in ("mp", "svd"):
            raise ValueError(f"proxies.settings.merino_entropy.method: 'mp' or 'svd', got {self.method!r}")
        if self.samples < 1:
            raise ValueError(f"proxies.settings.merino_entropy.samples: must be >= 1, got {self.samples!r}")


DEFAULT = EntropySettings()


# -- H(W) for one Gaussian matrix ------------------------------------------------------------
def _check_shape(m: int, n: int) -> None:
    if m < 1 or n < 1:
        raise ValueError(f"shape: matrix dimensions must be positive, got {m} x {n}")


@lru_cache(maxsize=65536)
def entropy_mp(m: int, n: int, eps: float = 1.0) -> float:
    """Marchenko-Pastur closed form of E[log det(I + W W^T / eps^2)], W m x n with N(0, 1) entries."""
    _check_shape(m, n)
    snr = m / (eps * eps)
    ratio = n / m
    root = math.sqrt(ratio)
    f = (math.sqrt(snr * (1 + root) ** 2 + 1) - math.sqrt(snr * (1 - root) ** 2 + 1)) ** 2
    cap = ratio * math.log1p(snr - f / 4) + math.log1p(snr * ratio - f / 4) - f / (4 * snr)
    return m * cap


def entropy_svd(m: int, n: int, eps: float = 1.0, samples: int = 4, seed: int = 0) -> float:
    """Monte-Carlo mean of sum_j log(1 + s_j^2/eps^2) over ``samples`` seeded N(0, 1) draws."""
    _check_shape(m, n)
    rng = np.random.default_rng([seed, m, n])
    total = 0.0
    for _ in range(samples):
        s = np.linalg.svd(rng.standard_normal((m, n)), compute_uv=False)
        total += float(np.log1p((s / eps) ** 2).sum())
    return total / samples


# -- which matrices a spec has: the backbone's per-layer view ---------------------------------
def _mha(d_model: int, inner: int, extra_r: bool = False) -> tuple[tuple[int, int], ...]:
    """Q, K, V and output projections (and Transformer-XL's r_net) of one attention."""
    shapes = ((d_model, inner),) * 3 + ((inner, d_model),)
    return shapes + ((d_model, inner),) if extra_r else shapes


def _ffn(d_model: int, d_inner: int) -> tuple[tuple[int, int], ...]:
    return ((d_model, d_inner), (d_inner, d_model))


def penalty(depth_: float, width: int, beta: float) -> float:
    """(1 - beta L / log w), clamped at 0; a width of 1 has log w = 0 and scores 0."""
    if width <= 1:
        return 0.0
    return max(0.0, 1.0 - beta * depth_ / math.log(width))


def components(spec: ArchSpec, cfg: EntropySettings | None = None) -> dict[str, float]:
    """Unweighted MHA and FFN entropies, their penalised forms, and the total."""
    cfg = cfg or DEFAULT
    if cfg.method == "mp":
        h = lambda m, n: entropy_mp(m, n, cfg.eps)  # noqa: E731
    else:
        cache: dict[tuple[int, int], float] = {}

        def h(m: int, n: int) -> float:
            key = (min(m, n), max(m, n))  # H(W) = H(W^T)
            if key not in cache:
                cache[key] = entropy_svd(key[0], key[1], cfg.eps, cfg.samples, cfg.seed)
            return cache[key]

    L = spec.plugin.entropy_depth(spec)
    raw = {"mha": 0.0, "ffn": 0.0}
    pen = {"mha": 0.0, "ffn": 0.0}
    for layer in spec.layer_view():
        parts = []
        if layer.attention:
            parts.append(("mha", _mha(layer.d_model, layer.attn_inner, layer.r_net), layer.d_model))
        if layer.ffn:
            parts.append(("ffn", _ffn(layer.d_model, layer.d_inner), layer.d_inner))
        for kind, shapes, width in parts:
            value = layer.times * sum(h(m, n) for m, n in shapes)
            raw[kind] += value
            pen[kind] += penalty(L, width, cfg.beta) * value
    total = cfg.alpha[0] * pen["mha"] + cfg.alpha[1] * pen["ffn"]
    return {"mha": raw["mha"], "ffn": raw["ffn"], "mha_penalised": pen["mha"],
            "ffn_penalised": pen["ffn"], "total": total}


@lru_cache(maxsize=65536)
def _mha_value(d_model: int, inner: int, extra_r: bool, eps: float) -> float:
    return sum(entropy_mp(m, n, eps) for m, n in _mha(d_model, inner, extra_r))


@lru_cache(maxsize=65536)
def _ffn_value(d_model: int, d_inner: int, eps: float) -> float:
    return 2.0 * entropy_mp(d_model, d_inner, eps)


@lru_cache(maxsize=65536)
def _penalty(depth_: float, width: int, beta: float) -> float:
    return penalty(depth_, width, beta)


def network_entropy(spec: ArchSpec, cfg: EntropySettings = DEFAULT) -> float:
    """MeRino's penalised, alpha-weighted network entropy (docs/proxies.md)."""
    if cfg.method != "mp":
        return components(spec, cfg)["total"]
    # Fast path: per-layer values and penalties are cached, so a spec costs a few look-ups per layer.
    eps, beta, (a1, a2) = cfg.eps, cfg.beta, cfg.alpha
    L = spec.plugin.entropy_depth(spec)
    total = 0.0
    for layer in spec.layer_view():
        term = 0.0
        if layer.attention:
            term += a1 * _penalty(L, layer.d_model, beta) * _mha_value(layer.d_model, layer.attn_inner,
                                                                       layer.r_net, eps)
        if layer.ffn:
            term += a2 * _penalty(L, layer.d_inner, beta) * _ffn_value(layer.d_model, layer.d_inner, eps)
        total += layer.times * term
    return total


@proxy(
    "merino_entropy",
    settings=EntropySettings,
    doc="MeRino subspace entropy: sum over layers of alpha1*(1-beta*L/log E)*H_MHA + "
    "alpha2*(1-beta*L/log F)*H_FFN, H(W)=E[log det(I+WW^T/eps^2)] of N(0,1) matrices "
    "(Marchenko-Pastur closed form). Higher = more expressive = lower predicted perplexity.",
)
def merino_entropy(spec: ArchSpec, seq_len: int = 192, settings: EntropySettings = DEFAULT) -> float:
    """Registered proxy; ``seq_len`` is unused (entropy depends on the weight shapes only)."""
    return network_entropy(spec, settings)
