"""MeRino's subspace entropy of a Transformer, from the spec alone (no model is built).

Each weight matrix of the spec's blocks (``paretolm.core.blocks``) is a Gaussian random map whose entropy
``H(W) = E[log det(I + W W^T / eps^2)]`` comes from the Marchenko-Pastur closed form (``mp``,
cached per shape) or seeded Monte-Carlo SVD (``svd``); attention and FFN entropies get MeRino's
effectiveness penalty and weights. Conventions and the closed form: docs/proxies.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from paretolm.core.arch import ArchSpec
from paretolm.core.blocks import Block, Matrix, depth
from paretolm.core.settings import check, setting
from paretolm.proxies.base import proxy


@dataclass(frozen=True)
class EntropySettings:
    """Settings of the merino_entropy proxy (config ``proxies.settings.merino_entropy``)."""

    eps: float = setting(1.0, exclusive_minimum=0, maximum=1e6, doc="Noise scale of H(W) = E log det(I + WW^T/eps^2).")
    alpha: tuple[float, float] = setting((0.6, 0.4), items={"minimum": 0}, doc="Weights of the MHA and FFN entropies.")
    beta: float = setting(1.0 / 16.0, minimum=0, maximum=100, doc="Effectiveness penalty (1 - beta L / log w).")
    method: Literal["mp", "svd"] = setting("mp", doc="mp: the Marchenko-Pastur closed form; svd: Monte-Carlo SVD.")
    samples: int = setting(4, minimum=1, maximum=1000, doc="SVD draws per shape (method svd).")
    seed: int = setting(0, minimum=0, maximum=4294967295, config=False)  # of the SVD draws

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", tuple(float(a) for a in self.alpha))
        check(self, "proxies.settings.merino_entropy")


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


# -- which matrices a spec has: its blocks ------------------------------------------------------
def penalty(depth_: float, width: int, beta: float) -> float:
    """(1 - beta L / log w), clamped at 0; a width of 1 has log w = 0 and scores 0."""
    if width <= 1:
        return 0.0
    return max(0.0, 1.0 - beta * depth_ / math.log(width))


def _parts(block: Block) -> list[tuple[str, tuple[Matrix, ...], int]]:
    """The block's MHA and FFN matrices, each with the width its effectiveness penalty reads
    (the residual width for attention, the inner width for the feed-forward part)."""
    matrices = block.matrices()
    out = []
    if block.attention is not None:
        out.append(("mha", tuple(m for m in matrices if m.part == "attn"), block.d_model))
    if block.ffn is not None:
        out.append(("ffn", tuple(m for m in matrices if m.part == "ffn"), block.ffn.d_inner))
    return out


def components(spec: ArchSpec, cfg: EntropySettings | None = None) -> dict[str, float]:
    """Unweighted MHA and FFN entropies, their penalised forms, and the total."""
    cfg = cfg or DEFAULT
    if cfg.method == "mp":
        h = lambda m, n: entropy_mp(min(m, n), max(m, n), cfg.eps)  # noqa: E731  (H(W) = H(W^T))
    else:
        cache: dict[tuple[int, int], float] = {}

        def h(m: int, n: int) -> float:
            key = (min(m, n), max(m, n))  # H(W) = H(W^T)
            if key not in cache:
                cache[key] = entropy_svd(key[0], key[1], cfg.eps, cfg.samples, cfg.seed)
            return cache[key]

    blocks = spec.block_view()
    L = depth(blocks)
    raw = {"mha": 0.0, "ffn": 0.0}
    pen = {"mha": 0.0, "ffn": 0.0}
    for block in blocks:
        for kind, matrices, width in _parts(block):
            value = block.times * sum(h(m.d_in, m.d_out) for m in matrices)
            raw[kind] += value
            pen[kind] += penalty(L, width, cfg.beta) * value
    total = cfg.alpha[0] * pen["mha"] + cfg.alpha[1] * pen["ffn"]
    return {
        "mha": raw["mha"],
        "ffn": raw["ffn"],
        "mha_penalised": pen["mha"],
        "ffn_penalised": pen["ffn"],
        "total": total,
    }


@lru_cache(maxsize=65536)
def _block_entropy(block: Block, L: float, eps: float, beta: float, a1: float, a2: float) -> float:
    # H(W) = H(W^T): each matrix is evaluated with its smaller side first, so a matrix and its
    # transpose score bitwise alike whichever way a block lists them
    weights = {"mha": a1, "ffn": a2}
    return sum(
        weights[kind]
        * penalty(L, width, beta)
        * sum(entropy_mp(min(m.d_in, m.d_out), max(m.d_in, m.d_out), eps) for m in matrices)
        for kind, matrices, width in _parts(block)
    )


def clear_caches() -> None:
    """Forget every cached matrix and block entropy (a benchmark's cold start)."""
    entropy_mp.cache_clear()
    _block_entropy.cache_clear()


def network_entropy(spec: ArchSpec, cfg: EntropySettings = DEFAULT) -> float:
    """MeRino's penalised, alpha-weighted network entropy (docs/proxies.md)."""
    if cfg.method != "mp":
        return components(spec, cfg)["total"]
    # Fast path: a block's penalised value is cached, so a spec costs a look-up per block.
    blocks = spec.block_view()
    L = depth(blocks)
    a1, a2 = cfg.alpha
    return sum(b.times * _block_entropy(b, L, cfg.eps, cfg.beta, a1, a2) for b in blocks)


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
