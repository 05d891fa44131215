"""Scoring specs with proxies: one ``Scorer`` per config part, one settings object per proxy and one
data batch for all, so every stage that scores (proxies, search, correlate, the CLI) scores alike."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tqdm import tqdm

from paretolm.core.arch import ArchSpec
from paretolm.data import load_batch
from paretolm.proxies.base import PROXIES, get
from paretolm.proxies.zero_cost import run_data_proxy


@dataclass
class Scorer:
    """Scores specs with named proxies, one settings object per proxy, one data batch for all."""

    names: Sequence[str]
    seq_len: int = 192
    seed: int = 0
    batch: Any = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = list(self.names)
        self.proxies = [get(n) for n in self.names]
        unknown = sorted(set(self.settings) - set(PROXIES.names()))
        if unknown:
            raise ValueError(f"proxies.settings.{unknown[0]}: not a proxy (known: {', '.join(PROXIES.names())})")
        self._settings = {p.name: p.make_settings(self.settings.get(p.name)) for p in self.proxies}
        need = self.data_proxies()
        if need and self.batch is None:
            raise ValueError(f"proxies.data: proxies {need} need a token batch; configure proxies.data")

    @classmethod
    def from_part(cls, part: Mapping[str, Any]) -> Scorer:
        """From the ``proxies`` config section (names, seq_len, seed, batch_size, data, settings)."""
        names = list(part["names"])
        need = [n for n in names if get(n).needs_data]
        batch = None
        if need:
            if not part.get("data"):
                raise ValueError(f"proxies.data: proxies {need} need a token batch; configure proxies.data")
            batch = load_batch(part["data"], int(part["batch_size"]), int(part["seq_len"]), int(part["seed"]))
        return cls(
            names,
            seq_len=int(part["seq_len"]),
            seed=int(part["seed"]),
            batch=batch,
            settings=part.get("settings") or {},
        )

    def data_proxies(self) -> list[str]:
        return [p.name for p in self.proxies if p.needs_data]

    def score(self, spec: ArchSpec, name: str) -> tuple[float, int | None]:
        """One proxy's value for ``spec`` and, for data-dependent ones, the FLOPs it cost."""
        p = get(name)
        kwargs = {} if self._settings.get(name) is None else {"settings": self._settings[name]}
        if p.needs_data:
            return run_data_proxy(p, spec, self.batch, seed=self.seed, **kwargs)
        return float(p.fn(spec, seq_len=self.seq_len, **kwargs)), None

    def row(self, spec: ArchSpec, costs: bool = True) -> dict[str, Any]:
        row: dict[str, Any] = {"arch_id": spec.arch_id}
        for p in self.proxies:
            t0 = time.perf_counter()
            value, flops = self.score(spec, p.name)
            if costs and flops is not None:
                row[f"{p.name}_flops"] = flops
            row[p.name] = float(value)
            if costs:
                row[f"{p.name}_seconds"] = time.perf_counter() - t0
        return row

    def table(self, specs: Sequence[ArchSpec], progress: bool = False, costs: bool = True) -> pd.DataFrame:
        """One row per spec, ``arch_id`` first; with ``costs``, ``<name>_seconds`` (and
        ``<name>_flops`` for data-dependent proxies) beside each value."""
        iterator: Iterable[ArchSpec] = specs
        if progress:
            iterator = tqdm(specs, desc="proxies", unit="arch")
        return pd.DataFrame([self.row(spec, costs) for spec in iterator])


def score_table(
    specs: Sequence[ArchSpec],
    names: Iterable[str],
    *,
    seq_len: int = 192,
    batch: Any = None,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every spec with every named proxy: one row per spec, ``arch_id`` first."""
    scorer = Scorer(list(names), seq_len=seq_len, seed=seed, batch=batch, settings=settings or {})
    return scorer.table(specs, progress=progress)


__all__ = ["Scorer", "score_table"]
