"""A learned latency predictor: spec features -> milliseconds, a small MLP kept in safetensors.

SpeedLimit (Chai et al., 2023, arXiv:2209.12127) narrows its search space with a latency
predictor before measuring anything; HAT (Wang et al., ACL 2020) showed that a small MLP on
architecture features (embedding dims, layer counts, average FFN widths and head counts) predicts
measured Transformer latency well. paretolm follows HAT's recipe with a smaller network:

* **Features** (``spec_features``): depth, width statistics, per-layer widths / FFN widths / heads
  (padded with zeros to the deepest architecture the predictor was fitted on), the exact analytic
  parameter counts and forward FLOPs at the measured sequence length (``paretolm.core.counting``).
  Every feature is ``log1p``-transformed (latency is close to multiplicative in sizes) and
  standardised with the training set's mean and spread.
* **Target**: ``log(latency_ms)``, so the loss is a relative error and MAPE is what it minimises.
* **Model**: an MLP (``hidden`` layers, SiLU) trained full-batch with AdamW and a cosine schedule
  from a fixed seed, so a fit is deterministic on one machine.
* **Storage**: ``save`` writes the weights to safetensors and the feature names, scaling and
  layer sizes as JSON in its metadata; ``load`` rebuilds the network from them (no pickle).

``evaluate`` gives the held-out metrics used throughout: RMSE (ms), MAPE (%), Spearman and
Kendall rank correlations. ``params_only_baseline`` fits the same MLP to one feature (total
parameters) as the yardstick a predictor must beat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_path
from paretolm.core.counting import DEFAULT_SEQ_LEN, count

if TYPE_CHECKING:
    import safetensors
    import safetensors.torch as safetensors_torch
    import torch
    import torch.nn as nn
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")
    safetensors = lazy.module("safetensors")
    safetensors_torch = lazy.module("safetensors.torch")
    nn = lazy.module("torch.nn")


FORMAT = "paretolm-latency-mlp/1"


# -- features -------------------------------------------------------------------------------------
def layer_genes(spec: ArchSpec) -> tuple[list[int], list[int], list[int]]:
    """Per-layer width, FFN width and head count from the spec's blocks (0 for a part a block
    lacks; shared layers repeated as often as they are applied)."""
    widths, inner, heads = [], [], []
    for b in spec.block_view():
        widths += [b.d_model] * b.times
        inner += [b.ffn.d_inner if b.ffn else 0] * b.times
        heads += [b.attention.n_head if b.attention else 0] * b.times
    return widths, inner, heads


def spec_features(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN, positions: int = 0) -> dict[str, float]:
    """Named features of one spec; ``positions`` per-layer slots (zero-padded, longer cut)."""
    widths, inner, heads = layer_genes(spec)
    c = count(spec, seq_len)
    f: dict[str, float] = {
        "n_layers": len(widths),
        "d_model_mean": float(np.mean(widths)),
        "d_model_max": max(widths),
        "d_inner_mean": float(np.mean(inner)),
        "d_inner_max": max(inner),
        "n_head_mean": float(np.mean(heads)),
        "n_head_sum": sum(heads),
        "decoder_params": c.decoder_params,
        "embedding_params": c.embedding_params,
        "total_params": c.total_params,
        "flops": c.flops,
        "vocab_size": spec.vocab_size,
    }
    for i in range(positions):
        f[f"d_model_{i}"] = widths[i] if i < len(widths) else 0
        f[f"d_inner_{i}"] = inner[i] if i < len(inner) else 0
        f[f"n_head_{i}"] = heads[i] if i < len(heads) else 0
    return f


def profile_features(df: pd.DataFrame, seq_len: int = DEFAULT_SEQ_LEN, positions: int | None = None) -> pd.DataFrame:
    """Features of a profile table's ``spec`` column (``positions``: default the deepest spec)."""
    if "spec" not in df.columns:
        raise ValueError("spec: the profile table needs a spec column (JSON)")
    specs = [ArchSpec.from_json(s) for s in df["spec"]]
    if positions is None:
        positions = max(len(layer_genes(s)[0]) for s in specs)
    return pd.DataFrame([spec_features(s, seq_len, positions) for s in specs], index=df.index)


HAT_FEATURES = (
    "encoder_embed_dim",
    "encoder_layer_num",
    "encoder_ffn_embed_dim_avg",
    "encoder_self_attention_heads_avg",
    "decoder_embed_dim",
    "decoder_layer_num",
    "decoder_ffn_embed_dim_avg",
    "decoder_self_attention_heads_avg",
    "decoder_ende_attention_heads_avg",
    "decoder_arbitrary_ende_attn_avg",
)


def read_hat(path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """HAT latency CSV -> (features, latency in ms). Target: encoder + decoder mean latency (one
    translation, as HAT's predictor). Adds approximate linear-layer parameter counts (encoder
    layers 4E^2 + 2EF, decoder layers 4E^2 + 2E(E+E_enc) + 2EF) so a params-only baseline exists."""
    df = pd.read_csv(path)
    need = set(HAT_FEATURES) | {"latency_mean_encoder", "latency_mean_decoder"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise ValueError(f"{Path(path).name}: missing HAT columns {missing}")
    X = df[list(HAT_FEATURES)].astype(float).copy()
    ee, ef, el = X["encoder_embed_dim"], X["encoder_ffn_embed_dim_avg"], X["encoder_layer_num"]
    de, df_, dl = X["decoder_embed_dim"], X["decoder_ffn_embed_dim_avg"], X["decoder_layer_num"]
    X["encoder_params"] = el * (4 * ee**2 + 2 * ee * ef)
    X["decoder_params"] = dl * (4 * de**2 + 2 * de * (de + ee) + 2 * de * df_)
    X["total_params"] = X["encoder_params"] + X["decoder_params"]
    y = (df["latency_mean_encoder"] + df["latency_mean_decoder"]).astype(float)
    return X, y


# -- metrics ---------------------------------------------------------------------------------------
def evaluate(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """RMSE (ms), MAPE (%), Spearman and Kendall of predicted vs measured latency."""
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape or t.size < 2:
        raise ValueError(f"y_pred: need equal-length arrays of at least 2 values, got {t.shape}, {p.shape}")
    return {
        "n": int(t.size),
        "rmse_ms": float(np.sqrt(np.mean((t - p) ** 2))),
        "mape_pct": float(100 * np.mean(np.abs(t - p) / np.abs(t))),
        "spearman": float(spearmanr(t, p).statistic),
        "kendall": float(kendalltau(t, p).statistic),
    }


def split(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``range(n)``."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: must be in (0, 1), got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(n * test_fraction)))
    return np.sort(order[k:]), np.sort(order[:k])


def default_hidden(rows: int) -> tuple[int, ...]:
    """Hidden layers for a training set of ``rows``: the MLP from 200 rows up, a log-linear model
    (no hidden layer) below, where the MLP over-fits (on 40 measured int8 BERTs the log-linear
    model has about half the MLP's 5-fold MAPE; numbers in docs/methods.md)."""
    return (32, 32) if rows >= 200 else ()


# -- the model -------------------------------------------------------------------------------------
@dataclass
class LatencyPredictor:
    """An MLP from log1p-standardised features to log latency (see the module docstring)."""

    hidden: tuple[int, ...] = (32, 32)
    epochs: int = 400
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0
    features: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _net: Any = None

    def _build(self, n_in: int) -> Any:
        layers: list[Any] = []
        width = n_in
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers).double()

    def _transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ValueError(f"features: the input lacks {missing}")
        raw = X[self.features].to_numpy(dtype=float)
        if (raw < 0).any():
            raise ValueError("features: latency features must be non-negative")
        return (np.log1p(raw) - self.mean) / self.std

    def fit(self, X: pd.DataFrame, y: Iterable[float]) -> LatencyPredictor:
        """Fit on features ``X`` (a DataFrame) and latencies ``y`` in ms (all positive)."""
        y_arr = np.asarray(list(y), dtype=float)
        if len(X) != len(y_arr) or len(X) < 4:
            raise ValueError(f"latency_ms: need at least 4 rows matching the features, got {len(y_arr)}")
        if not (np.isfinite(y_arr).all() and (y_arr > 0).all()):
            raise ValueError("latency_ms: every latency must be a positive, finite number")
        self.features = list(X.columns)
        logs = np.log1p(X.to_numpy(dtype=float))
        self.mean = logs.mean(axis=0)
        std = logs.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        xs = torch.from_numpy(self._transform(X))
        ys = torch.from_numpy(np.log(y_arr))[:, None]
        with _torch_seed(self.seed), _threads(1):
            net = self._build(xs.shape[1])
            with torch.no_grad():  # start at the mean log latency
                net[-1].bias.fill_(float(ys.mean()))
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = torch.mean((net(xs) - ys) ** 2)
                loss.backward()
                opt.step()
                sched.step()
        self._net = net.eval()
        self.meta["train_rows"] = int(len(y_arr))
        self.meta["train_rmse_log"] = float(loss.detach().sqrt())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted latency in ms for each row of ``X``."""
        if self._net is None:
            raise ValueError("predictor: not fitted (call fit or load)")
        with torch.no_grad(), _threads(1):
            out = self._net(torch.from_numpy(self._transform(X)))
        return np.exp(out[:, 0].numpy())

    def predict_specs(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Predicted latency of specs, with the sequence length and padding fixed at fit time."""
        seq_len = int(self.meta.get("seq_len", DEFAULT_SEQ_LEN))
        positions = int(self.meta.get("positions", 0))
        X = pd.DataFrame([spec_features(s, seq_len, positions) for s in specs])
        return self.predict(X)

    # -- storage ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Weights to safetensors; features, scaling and settings as JSON metadata."""
        if self._net is None:
            raise ValueError("predictor: nothing to save, not fitted")
        header = {
            "format": FORMAT,
            "hidden": list(self.hidden),
            "features": self.features,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "settings": {"epochs": self.epochs, "lr": self.lr, "weight_decay": self.weight_decay, "seed": self.seed},
            "meta": self.meta,
        }
        tensors = {k: v.detach().contiguous() for k, v in self._net.state_dict().items()}
        with atomic_path(path) as tmp:
            safetensors_torch.save_file(tensors, str(tmp), metadata={"paretolm": json.dumps(header, sort_keys=True)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LatencyPredictor:
        tensors = {}
        with safetensors.safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("paretolm")
            for k in fh.keys():
                tensors[k] = fh.get_tensor(k)
        if not raw:
            raise ValueError(f"{path}: not a paretolm latency predictor (no metadata)")
        header = json.loads(raw)
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
        s = header["settings"]
        pred = cls(
            hidden=tuple(header["hidden"]),
            epochs=s["epochs"],
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            seed=s["seed"],
            features=list(header["features"]),
            mean=np.asarray(header["mean"]),
            std=np.asarray(header["std"]),
            meta=header["meta"],
        )
        net = pred._build(len(pred.features))
        net.load_state_dict(tensors)
        pred._net = net.eval()
        return pred


class _torch_seed:
    """Seed torch's global generator for a block and restore its state afterwards."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self) -> None:
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        torch.random.set_rng_state(self.state)


class _threads:
    """Run a block on ``n`` intra-op threads (training is tiny; other work shares the cores)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


# -- fitting on tables ----------------------------------------------------------------------------
def fit_profile(df: pd.DataFrame, seq_len: int = DEFAULT_SEQ_LEN, **settings: Any) -> LatencyPredictor:
    """Fit on a profile table (``arch_id``, ``spec`` JSON, ``latency_ms``), e.g. the pipeline's
    ``results/profile/{hardware}/{space}.parquet``."""
    for col in ("spec", "latency_ms"):
        if col not in df.columns:
            raise ValueError(f"{col}: the profile table needs this column")
    X = profile_features(df, seq_len)
    positions = sum(1 for c in X.columns if c.startswith("d_model_") and c[8:].isdigit())
    pred = LatencyPredictor(**settings).fit(X, df["latency_ms"])
    pred.meta.update(seq_len=seq_len, positions=positions)
    return pred


def params_only_baseline(
    X_train: pd.DataFrame, y_train: Iterable[float], X_test: pd.DataFrame, column: str = "total_params", **settings: Any
) -> np.ndarray:
    """Predictions of the same MLP fitted to one feature (parameters only)."""
    pred = LatencyPredictor(**settings).fit(X_train[[column]], y_train)
    return pred.predict(X_test[[column]])


def holdout(
    X: pd.DataFrame, y: pd.Series, test_fraction: float = 0.2, seed: int = 0, **settings: Any
) -> dict[str, Any]:
    """Fit on a seeded train split, report predictor and params-only metrics on the test split."""
    train, test = split(len(y), test_fraction, seed)
    Xtr, Xte = X.iloc[train], X.iloc[test]
    ytr, yte = y.iloc[train], y.iloc[test]
    pred = LatencyPredictor(seed=seed, **settings).fit(Xtr, ytr)
    base = params_only_baseline(Xtr, ytr, Xte, seed=seed, **settings)
    return {
        "predictor": evaluate(yte, pred.predict(Xte)),
        "params_only": evaluate(yte, base),
        "train_rows": len(train),
        "test_rows": len(test),
    }


def cross_validate(X: pd.DataFrame, y: pd.Series, folds: int = 5, seed: int = 0, **settings: Any) -> dict[str, Any]:
    """K-fold out-of-fold predictions (for small measured sets): metrics over all rows."""
    n = len(y)
    if not 2 <= folds <= n:
        raise ValueError(f"folds: need 2 <= folds <= rows ({n}), got {folds}")
    order = np.random.default_rng(seed).permutation(n)
    oof = np.empty(n)
    oof_base = np.empty(n)
    for k in range(folds):
        test = np.sort(order[k::folds])
        train = np.setdiff1d(np.arange(n), test)
        pred = LatencyPredictor(seed=seed, **settings).fit(X.iloc[train], y.iloc[train])
        oof[test] = pred.predict(X.iloc[test])
        oof_base[test] = params_only_baseline(X.iloc[train], y.iloc[train], X.iloc[test], seed=seed, **settings)
    return {"predictor": evaluate(y, oof), "params_only": evaluate(y, oof_base), "folds": folds, "rows": n}
