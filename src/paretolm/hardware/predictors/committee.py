"""Predictors of a target's latency and peak memory, with an uncertainty, for measuring less.

``search.measure: verify`` measures only the candidates that could be on the frontier; what the
other candidates would measure comes from a predictor trained on the measurements made so far.
Per target quantity (``latency_ms``, ``peak_memory_mb``) ``fit`` tries several model kinds and
keeps the one with the smallest out-of-fold error:

* ``roofline``: a non-negative linear model on analytic work and traffic counts (FLOPs, weight
  count, activation sizes, layer and head counts; ``design_features``), fitted for relative error
  (each row weighted by 1 / measured value). It extrapolates the way hardware scales and needs
  few rows.
* ``mlp``: the MLP of ``paretolm.hardware.predictors.mlp`` on log features (log-linear below 200 rows).
* ``gbt``: gradient-boosted trees (scikit-learn's ``HistGradientBoostingRegressor``) on log
  features and log target.
* ``ensemble``: the mean, in log space, of the three.

**Uncertainty.** The fit is k-fold cross-validation, and the k fold models of the chosen kind are
kept as a committee: the prediction is the mean of their log predictions, and its relative
uncertainty ``sigma`` combines their spread with the out-of-fold RMS log error (a floor for the
error the committee cannot see, measurement noise included). No extra fit is made for the final
model, so a refit costs k fits per kind.

**Active sampling.** ``active_order`` picks which candidates to measure first so that a budget of
measurements covers the feature space: greedy farthest-point sampling in standardised log
features, starting from what is already measured. A predictor trained on a spread-out design is
more accurate for the same number of measurements than one trained on random draws
(``benchmarks/bench_search.py`` measures by how much).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.stats import kendalltau
from threadpoolctl import threadpool_limits

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.hardware.predictors.mlp import LatencyPredictor, default_hidden

TARGETS = ("latency_ms", "peak_memory_mb")
Kind = Literal["roofline", "mlp", "gbt", "ensemble"]
KINDS: tuple[str, ...] = get_args(Kind)
Choice = Literal["auto", Kind]  # a setting that picks one, or auto: the lowest out-of-fold error

# The columns of the roofline model: work (FLOPs), weight traffic (parameters), activation traffic
# summed over layers and at the widest layer (peak memory holds one layer's activations at a
# time), and fixed per-layer / per-head costs (kernel launches, layer norms, softmaxes).
ROOFLINE = (
    "flops",
    "total_params",
    "act_model",
    "act_inner",
    "act_attn",
    "act_model_max",
    "act_inner_max",
    "act_attn_max",
    "logits",
    "n_layers",
    "n_head_sum",
)
# Genes the per-layer view already describes; other scalar genes (div_val, d_embed, mem_len, ...)
# become ``gene_<name>`` features, since they can change the cost in ways the counts do not show
# (an adaptive softmax, div_val > 1, holds several vocabulary-sized buffers).
LAYER_GENES = {"n_layer", "d_model", "d_inner", "n_head", "vocab_size", "max_seq_len"}
# A gene_* feature with at most this many distinct values is a category for the roofline model.
MAX_LEVELS = 4


# -- features -----------------------------------------------------------------------------------
def design_features(spec: ArchSpec, seq_len: int) -> dict[str, float]:
    """Analytic features of one spec at the measured sequence length (all non-negative)."""
    blocks = spec.block_view()
    c = count(spec, seq_len)
    model = [(b.d_model, b.times) for b in blocks]
    inner = [(b.ffn.d_inner if b.ffn else 0, b.times) for b in blocks]
    heads = [(b.attention.n_head if b.attention else 0, b.times) for b in blocks]
    n_layers = sum(b.times for b in blocks)
    genes = {
        f"gene_{k}": float(v)
        for k, v in spec.genes().items()
        if k not in LAYER_GENES and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return {
        "flops": float(c.flops),
        "total_params": float(c.total_params),
        "decoder_params": float(c.decoder_params),
        "embedding_params": float(c.embedding_params),
        "act_model": float(seq_len * sum(d * t for d, t in model)),
        "act_inner": float(seq_len * sum(d * t for d, t in inner)),
        "act_attn": float(seq_len * seq_len * sum(h * t for h, t in heads)),
        "act_model_max": float(seq_len * max((d for d, _ in model), default=0)),
        "act_inner_max": float(seq_len * max((d for d, _ in inner), default=0)),
        "act_attn_max": float(seq_len * seq_len * max((h for h, _ in heads), default=0)),
        "logits": float(seq_len * spec.vocab_size),
        "n_layers": float(n_layers),
        "n_head_sum": float(sum(h * t for h, t in heads)),
        "d_model_mean": float(sum(d * t for d, t in model) / max(n_layers, 1)),
        "d_inner_mean": float(sum(d * t for d, t in inner) / max(n_layers, 1)),
        **genes,
    }


def feature_table(specs: Sequence[ArchSpec], seq_len: int) -> pd.DataFrame:
    return pd.DataFrame([design_features(s, seq_len) for s in specs])


# -- the model kinds: each fit returns a function from features to log predictions ----------------
LogModel = Callable[[pd.DataFrame], np.ndarray]


def _roofline_design(X: pd.DataFrame, levels: dict[str, list[float]]) -> np.ndarray:
    """The roofline columns, then per level of each categorical gene an offset and a
    vocabulary-traffic (``logits``) term."""
    cols = [X[c].to_numpy(dtype=float) for c in ROOFLINE]
    for gene, values in levels.items():
        for v in values:
            hit = (X[gene].to_numpy(dtype=float) == v).astype(float)
            cols += [hit, hit * X["logits"].to_numpy(dtype=float)]
    return np.column_stack(cols)


def _fit_roofline(X: pd.DataFrame, y: np.ndarray, seed: int) -> LogModel:
    """Non-negative least squares of ``y ~ b0 + sum b_i x_i`` with relative residuals."""
    levels = {
        c: sorted(X[c].unique().tolist())
        for c in X.columns
        if c.startswith("gene_") and 1 < X[c].nunique() <= MAX_LEVELS
    }
    raw = _roofline_design(X, levels)
    scale = np.where(raw.max(axis=0) > 0, raw.max(axis=0), 1.0)  # conditioning only
    A = np.column_stack([np.ones(len(raw)), raw / scale])
    coef, _ = nnls(A / y[:, None], np.ones(len(y)), maxiter=50 * A.shape[1])

    def predict(Xn: pd.DataFrame) -> np.ndarray:
        An = np.column_stack([np.ones(len(Xn)), _roofline_design(Xn, levels) / scale])
        return np.log(np.maximum(An @ coef, 1e-9))

    return predict


def _fit_mlp(X: pd.DataFrame, y: np.ndarray, seed: int) -> LogModel:
    model = LatencyPredictor(hidden=default_hidden(len(y)), seed=seed).fit(X, y)
    return lambda Xn: np.log(model.predict(Xn[X.columns]))


def _fit_gbt(X: pd.DataFrame, y: np.ndarray, seed: int) -> LogModel:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=max(2, len(y) // 20), random_state=seed
    )
    # one OpenMP thread: on a busy machine more threads make these tiny fits far slower
    with threadpool_limits(1):
        model.fit(np.log1p(X.to_numpy(dtype=float)), np.log(y))

    def predict(Xn: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(1):
            return model.predict(np.log1p(Xn[X.columns].to_numpy(dtype=float)))

    return predict


FITTERS: dict[str, Callable[[pd.DataFrame, np.ndarray, int], LogModel]] = {
    "roofline": _fit_roofline,
    "mlp": _fit_mlp,
    "gbt": _fit_gbt,
}


# -- one target: cross-validated choice of kind, the fold committee -------------------------------
@dataclass
class TargetModel:
    """The predictor of one quantity: the chosen kind's fold models and its out-of-fold error."""

    target: str
    kind: str
    members: list[LogModel]
    resid: float  # out-of-fold RMS of the log error of the chosen kind
    cv_mape: dict[str, float] = field(default_factory=dict)  # every kind tried -> out-of-fold MAPE %
    rows: int = 0

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predicted values and their relative uncertainty (a standard deviation of the log)."""
        logs = np.stack([m(X) for m in self.members])
        spread = logs.std(axis=0)
        return np.exp(logs.mean(axis=0)), np.sqrt(spread**2 + self.resid**2)

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "cv_mape_pct": self.cv_mape, "resid_log": self.resid}


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[i::k]) for i in range(k)]


def fit_target(
    X: pd.DataFrame, y: Sequence[float], target: str, kinds: Sequence[str] = KINDS, folds: int = 5, seed: int = 0
) -> TargetModel:
    """Cross-validate every kind in ``kinds`` on ``(X, y)``; keep the one with the lowest
    out-of-fold MAPE (ties: the earlier kind). ``ensemble`` averages the other kinds tried."""
    y = np.asarray(y, dtype=float)
    if len(y) < 4 or not (np.isfinite(y).all() and (y > 0).all()):
        raise ValueError(f"{target}: need at least 4 positive, finite measurements, got {len(y)}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"search.verify.predictor: unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})")
    base = [k for k in kinds if k != "ensemble"] or [k for k in KINDS if k != "ensemble"]
    k = max(2, min(folds, len(y)))
    parts = _folds(len(y), k, seed)
    oof = {kind: np.empty(len(y)) for kind in base}
    members: dict[str, list[LogModel]] = {kind: [] for kind in base}
    for test in parts:
        train = np.setdiff1d(np.arange(len(y)), test)
        for kind in base:
            model = FITTERS[kind](X.iloc[train].reset_index(drop=True), y[train], seed)
            members[kind].append(model)
            oof[kind][test] = model(X.iloc[test].reset_index(drop=True))
    if "ensemble" in kinds:
        oof["ensemble"] = np.mean([oof[kind] for kind in base], axis=0)
        members["ensemble"] = [m for kind in base for m in members[kind]]
    log_y = np.log(y)
    mape = {kind: float(100 * np.mean(np.abs(np.exp(oof[kind]) - y) / y)) for kind in oof}
    chosen = min((kd for kd in KINDS if kd in mape), key=lambda kd: (mape[kd], KINDS.index(kd)))
    resid = float(np.sqrt(np.mean((oof[chosen] - log_y) ** 2)))
    return TargetModel(target, chosen, members[chosen], resid, mape, len(y))


@dataclass
class HardwarePredictor:
    """Predictors of every hardware quantity a target measures, from specs."""

    seq_len: int
    models: dict[str, TargetModel]

    def predict(self, specs: Sequence[ArchSpec]) -> pd.DataFrame:
        """Per spec: ``<target>`` (predicted) and ``<target>_sigma`` (relative uncertainty)."""
        X = feature_table(specs, self.seq_len)
        out = pd.DataFrame(index=range(len(specs)))
        for target, model in self.models.items():
            mean, sigma = model.predict(X)
            out[target] = mean
            out[f"{target}_sigma"] = sigma
        return out

    def summary(self) -> dict[str, Any]:
        return {t: m.summary() for t, m in self.models.items()}


def fit(
    specs: Sequence[ArchSpec],
    measured: pd.DataFrame,
    seq_len: int,
    kinds: Sequence[str] | Mapping[str, Sequence[str]] = KINDS,
    targets: Sequence[str] = TARGETS,
    folds: int = 5,
    seed: int = 0,
) -> HardwarePredictor:
    """Fit one ``TargetModel`` per target column of ``measured`` (rows in the order of ``specs``);
    a target whose column is missing or not positive everywhere is skipped. ``kinds`` may name
    the kinds to try per target."""
    X = feature_table(specs, seq_len)
    models = {}
    for target in targets:
        if target not in measured.columns:
            continue
        y = pd.to_numeric(measured[target], errors="coerce").to_numpy(dtype=float)
        if not (np.isfinite(y).all() and (y > 0).all()):
            continue
        tried = kinds.get(target, KINDS) if isinstance(kinds, Mapping) else kinds
        models[target] = fit_target(X, y, target, tried, folds, seed)
    return HardwarePredictor(seq_len, models)


# -- active sampling ------------------------------------------------------------------------------
def active_order(pool: Sequence[ArchSpec], measured: Sequence[ArchSpec], k: int, seq_len: int) -> list[int]:
    """Indices of ``k`` specs of ``pool`` to measure first: each the farthest (in standardised
    log roofline features) from everything measured or already picked."""
    if k <= 0 or not pool:
        return []
    cols = list(ROOFLINE)
    P = np.log1p(feature_table(pool, seq_len)[cols].to_numpy(dtype=float))
    M = np.empty((0, P.shape[1]))
    if measured:
        M = np.log1p(feature_table(measured, seq_len)[cols].to_numpy(dtype=float))
    both = np.vstack([P, M])
    mu, sd = both.mean(axis=0), both.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    P, M = (P - mu) / sd, (M - mu) / sd
    picked: list[int] = []
    if len(M):
        dist = np.min(((P[:, None, :] - M[None, :, :]) ** 2).sum(axis=2), axis=1)
    else:  # nothing measured yet: start at the point nearest the centre
        picked.append(int(np.argmin((P**2).sum(axis=1))))
        dist = ((P - P[picked[0]]) ** 2).sum(axis=1)
    while len(picked) < min(k, len(P)):
        dist[picked] = -1.0
        i = int(np.argmax(dist))  # first of equals: deterministic
        picked.append(i)
        dist = np.minimum(dist, ((P - P[i]) ** 2).sum(axis=1))
    return picked


def heldout_metrics(measured: Sequence[float], predicted: Sequence[float]) -> dict[str, float | int | None]:
    """MAPE (%) and Kendall's tau of predictions made before the measurements were seen."""
    t = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if len(t) == 0:
        return {"n": 0, "mape_pct": None, "kendall": None}
    tau = float(kendalltau(t, p).statistic) if len(t) >= 2 else None
    return {
        "n": int(len(t)),
        "mape_pct": float(100 * np.mean(np.abs(p - t) / t)),
        "kendall": None if tau is None or np.isnan(tau) else tau,
    }


__all__ = [
    "KINDS",
    "ROOFLINE",
    "TARGETS",
    "HardwarePredictor",
    "TargetModel",
    "active_order",
    "design_features",
    "feature_table",
    "fit",
    "fit_target",
    "heldout_metrics",
]
