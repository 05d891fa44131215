"""Proxies: cheap scores that predict a trained model's perplexity without training it.

Every proxy is one registered function. Sign convention: each is reported so that **higher
predicts lower perplexity**. Analytic proxies take the spec alone; data-dependent ones take an
untrained model built from the spec and one batch of token ids. ``score_table`` scores many specs
and records, for each proxy, the seconds it cost (``<name>_seconds``) and, for data-dependent ones,
the FLOPs it counted (``<name>_flops``).

Adding a proxy::

    @register("my_proxy", needs_data=False, doc="formula ...")
    def my_proxy(spec: ArchSpec, seq_len: int) -> float: ...

    @register("my_data_proxy", needs_data=True, doc="formula ...")
    def my_data_proxy(model: nn.Module, batch: torch.Tensor, spec: ArchSpec) -> float: ...
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..arch import ArchSpec
from ..counting import count


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    needs_data: bool
    doc: str


_REGISTRY: dict[str, Proxy] = {}
# Modules whose import registers further proxies (kept lazy: they pull in torch).
_PLUGIN_MODULES = ("entropy", "zero_cost")


def register(name: str, needs_data: bool = False, doc: str = "") -> Callable:
    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        _REGISTRY[name] = Proxy(name=name, fn=fn, needs_data=needs_data, doc=doc or (fn.__doc__ or "").strip())
        return fn

    return deco


def _load_plugins() -> None:
    for mod in _PLUGIN_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{mod}":
                raise


def registry() -> dict[str, Proxy]:
    _load_plugins()
    return dict(_REGISTRY)


def get(name: str) -> Proxy:
    reg = registry()
    if name not in reg:
        raise ValueError(f"proxies: unknown proxy {name!r} (known: {', '.join(sorted(reg))})")
    return reg[name]


for _field, _doc in (
    ("decoder_params", "LTS's proxy: parameters inside the decoder layers (no embeddings, no head)."),
    ("embedding_params", "Token and positional embedding parameters (and an untied head)."),
    ("total_params", "All parameters of the model."),
    ("flops", "Forward FLOPs at batch 1 and the configured sequence length."),
):
    register(_field, doc=_doc)(
        (lambda field: lambda spec, seq_len=192: float(getattr(count(spec, seq_len), field)))(_field)
    )


def score_table(
    specs: Sequence[ArchSpec],
    names: Iterable[str],
    *,
    seq_len: int = 192,
    batch: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every spec with every named proxy: one row per spec, ``arch_id`` first."""
    proxies = [get(n) for n in names]
    if any(p.needs_data for p in proxies) and batch is None:
        need = [p.name for p in proxies if p.needs_data]
        raise ValueError(f"proxies: {need} need a data batch (configure a dataset for the proxy stage)")
    rows = []
    iterator: Iterable[ArchSpec] = specs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(specs, desc="proxies", unit="arch")
    for spec in iterator:
        row: dict[str, Any] = {"arch_id": spec.arch_id}
        for p in proxies:
            t0 = time.perf_counter()
            if p.needs_data:
                from .zero_cost import run_data_proxy

                value, flops = run_data_proxy(p, spec, batch, seed=seed)
                row[f"{p.name}_flops"] = flops
            else:
                value = p.fn(spec, seq_len=seq_len)
            row[p.name] = float(value)
            row[f"{p.name}_seconds"] = time.perf_counter() - t0
        rows.append(row)
    return pd.DataFrame(rows)
