"""Proxies: cheap scores that predict a trained model's perplexity without training it.

Every proxy is one function registered with ``@proxy`` in a module of this package (scanned on
first use; declaring one imports no torch). Sign convention: each is reported so that **higher
predicts lower perplexity**. Analytic proxies take the spec; data-dependent ones
(``needs_data=True``) take an untrained model built from the spec and one batch of token ids. A
proxy with knobs names a frozen dataclass of ``paretolm.core.settings`` fields as its ``settings``:
the config schema's ``proxies.settings.<name>`` is generated from it, config fills it, and every
stage that scores (proxies, search, correlate, the CLI) goes through one ``Scorer`` built from the
same config part, so they all score with the same settings. A proxy that reads something trained
beforehand (``trained``) names it with ``artifact`` (the workflow makes that an input of every job
that scores it) and its one-off cost with ``setup_seconds``; ``check`` says what it needs from the
rest of the config, before any job.

    @proxy("my_proxy", doc="formula ...")
    def my_proxy(spec: ArchSpec, seq_len: int) -> float: ...

    @proxy("my_data_proxy", needs_data=True, doc="formula ...")
    def my_data_proxy(model: nn.Module, batch: torch.Tensor, spec: ArchSpec) -> float: ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tqdm import tqdm

from paretolm.core import settings as fields
from paretolm.core.arch import ArchSpec
from paretolm.core.registry import Registry
from paretolm.data import load_batch


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    needs_data: bool = False
    doc: str = ""
    settings: type | None = None  # a dataclass of the proxy's knobs, or None
    # Reads something trained beforehand (supernet_loss: a supernet): takes the spec like an
    # analytic proxy, but is not one (analyses that score "every analytic proxy" leave it out).
    trained: bool = False
    # settings -> the path of what it reads (made by a rule of the workflow before any scoring job)
    artifact: Callable[[Any], Any] | None = None
    # settings -> seconds spent once before scoring any candidate (a trained artifact's training)
    setup_seconds: Callable[[Any], float] | None = None
    # (validated config, settings) -> None; ValueError naming the key the proxy lacks
    check: Callable[[Mapping[str, Any], Any], None] | None = None

    def make_settings(self, values: Mapping[str, Any] | None) -> Any:
        """The proxy's settings object from a config mapping (None: the proxy has no knobs)."""
        if self.settings is None:
            if values:
                raise ValueError(f"proxies.settings.{self.name}: proxy {self.name!r} takes no settings")
            return None
        return fields.from_config(self.settings, values, f"proxies.settings.{self.name}")


PROXIES: Registry[Proxy] = Registry("proxy", package=__name__)


def proxy(name: str, needs_data: bool = False, doc: str = "", settings: type | None = None,
          trained: bool = False, artifact: Callable[[Any], Any] | None = None,
          setup_seconds: Callable[[Any], float] | None = None,
          check: Callable[[Mapping[str, Any], Any], None] | None = None) -> Callable:
    """Register the decorated function as proxy ``name`` (the fields of ``Proxy``)."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        PROXIES.add(name, Proxy(name=name, fn=fn, needs_data=needs_data, doc=doc or (fn.__doc__ or "").strip(),
                                settings=settings, trained=trained, artifact=artifact,
                                setup_seconds=setup_seconds, check=check))
        return fn

    return deco


def get(name: str) -> Proxy:
    return PROXIES.get(name)


def registry() -> dict[str, Proxy]:
    return dict(PROXIES.items())


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
        return cls(names, seq_len=int(part["seq_len"]), seed=int(part["seed"]), batch=batch,
                   settings=part.get("settings") or {})

    def data_proxies(self) -> list[str]:
        return [p.name for p in self.proxies if p.needs_data]

    def score(self, spec: ArchSpec, name: str) -> tuple[float, int | None]:
        """One proxy's value for ``spec`` and, for data-dependent ones, the FLOPs it cost."""
        p = get(name)
        kwargs = {} if self._settings.get(name) is None else {"settings": self._settings[name]}
        if p.needs_data:
            from paretolm.proxies.zero_cost import run_data_proxy

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


def score_table(specs: Sequence[ArchSpec], names: Iterable[str], *, seq_len: int = 192, batch: Any = None,
                seed: int = 0, settings: Mapping[str, Mapping[str, Any]] | None = None,
                progress: bool = False) -> pd.DataFrame:
    """Score every spec with every named proxy: one row per spec, ``arch_id`` first."""
    scorer = Scorer(list(names), seq_len=seq_len, seed=seed, batch=batch, settings=settings or {})
    return scorer.table(specs, progress=progress)


__all__ = ["PROXIES", "Proxy", "Scorer", "get", "proxy", "registry", "score_table"]
