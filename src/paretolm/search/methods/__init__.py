"""Search methods: each one module or folder here, registered in ``METHODS``, chosen per run by
config ``search.method``, with its settings in its own block ``search.<method>``.

A method is a ``Method``: its ``settings`` dataclass (``paretolm.core.settings`` fields: the block's
keys, defaults and limits, from which the config schema's ``search.<method>`` is generated), the
``backbone`` its space must have (None: any), ``check`` (what it needs from the rest of the config,
run before the first job), ``test_settings`` (the small block the registry-wide tests run it with)
and ``run``. Declaring one imports no torch: a method that trains imports it inside ``run``.

A method takes a ``SearchProblem`` (the space, the settings, the proxies' ``Scorer``, the profile
stage's table as a start, and ``hardware``: the latency and memory of a batch of specs) and returns
a ``SearchResult`` whose archive holds every candidate it evaluated. Whether ``hardware`` measures
each spec on the target or predicts it (``search.measure: verify``) is decided outside the method,
by ``paretolm.search.driver.search``, which also normalises every method's archive to the
common columns (``COLUMNS``) and computes the frontier, so the report, audit and validation read
the same tables whatever the method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core import pareto
from paretolm.core import settings as fields
from paretolm.core.arch import ArchSpec
from paretolm.core.registry import Registry
from paretolm.core.settings import setting
from paretolm.core.spaces import SearchSpace

Measure = Callable[[ArchSpec], Mapping[str, Any]]
Hardware = Callable[[Sequence[ArchSpec]], list[dict[str, Any]]]

# The hardware numbers a measurement gives the search (the objectives it can minimise).
HARDWARE = ("latency_ms", "peak_memory_mb")

# The columns every method's archive and frontier have, in this order, before the objectives
# and whatever else the method records:
#   iteration   the generation (or round) that proposed the candidate; 0 = initial
#   origin      sample (the profile stage's), random, mutation, crossover, offspring, design, ...
#   parents     arch_ids of the parents (empty when the method does not track them)
#   in_bounds   passes the checks made without the device (parameter bounds, budgets, narrowing)
#   feasible    in_bounds and, by its final numbers, under the latency bound
#   measured    its hardware numbers were measured on the target (else predicted, or absent)
#   measured_at its position in the order of measurements (profile rows first); null if predicted
#   on_front    on the frontier: non-dominated among the feasible, measured candidates
COLUMNS = (
    "arch_id",
    "spec",
    "iteration",
    "origin",
    "parents",
    "in_bounds",
    "feasible",
    "measured",
    "measured_at",
    "on_front",
)


@dataclass(frozen=True)
class Bounds:
    """``search.bounds``: a parameter range checked before measuring, a latency upper bound."""

    params_column: str
    params_min: float | None
    params_max: float | None
    latency_ms_max: float | None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Bounds:
        b = settings["bounds"]
        return cls(b["params"]["column"], b["params"]["min"], b["params"]["max"], b["latency_ms_max"])

    def params_ok(self, values: Mapping[str, Any]) -> bool:
        if self.params_min is None and self.params_max is None:
            return True
        n = float(values[self.params_column])
        return (self.params_min is None or n >= self.params_min) and (self.params_max is None or n <= self.params_max)

    def latency_ok(self, values: Mapping[str, Any]) -> bool:
        """Under the latency bound; a candidate without a latency (never evaluated on the
        target) is not held against it."""
        if self.latency_ms_max is None:
            return True
        lat = values.get("latency_ms")
        return lat is None or (isinstance(lat, float) and math.isnan(lat)) or float(lat) <= self.latency_ms_max


def objectives_of(settings: Mapping[str, Any]) -> dict[str, str]:
    """``search.objectives`` as ``{column: "max" | "min"}``: the proxy, latency, peak memory."""
    obj = settings["objectives"]
    out: dict[str, str] = {}
    if obj["proxy"]:
        out[obj["proxy"]] = "max"
    if obj["latency"]:
        out["latency_ms"] = "min"
    if obj["memory"]:
        out["peak_memory_mb"] = "min"
    return out


def measure_each(measure: Measure) -> Hardware:
    """``hardware`` that measures every spec with ``measure`` (``search.measure: all``)."""

    def hardware(specs: Sequence[ArchSpec]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            values = dict(measure(spec))
            values.pop("arch_id", None)
            out.append({**values, "measured": True})
        return out

    return hardware


SPACE_NAME = "^[A-Za-z0-9_.-]+$"  # a space is named by its file stem


@dataclass(frozen=True)
class MethodSettings:
    """The key every method's block has; a method's settings class adds its own."""

    space: str | None = setting(None, pattern=SPACE_NAME, doc="This method's space (null: search.space).")


class Method:
    """Base class of a search method plugin (module docstring)."""

    settings: type = MethodSettings
    backbone: str | None = None  # the backbone its space must have; None: any
    latency_bound: bool = False  # searches under search.bounds.latency_ms_max, which must then be set
    test_settings: Mapping[str, Any] = {}  # a small block for the registry-wide tests (tests/test_methods.py)
    doc: str = ""

    def check(self, config: Mapping[str, Any], space: SearchSpace) -> None:
        """Raise ValueError naming the config key when the validated ``config`` lacks what this
        method needs; ``space`` is its parsed search space."""

    def run(self, problem: SearchProblem) -> SearchResult:
        raise NotImplementedError

    def options(self, block: Mapping[str, Any], name: str) -> Any:
        """The ``settings`` instance of a validated block ``search.<name>``."""
        return fields.from_config(self.settings, block, f"search.{name}")


@dataclass
class SearchProblem:
    """Everything a method needs for one run on one hardware target."""

    space: SearchSpace
    settings: Mapping[str, Any]  # the validated ``search`` section: common keys + this method's block
    hardware: Hardware  # hardware numbers of specs (each dict has ``measured``: measured or predicted)
    scorer: Any  # paretolm.proxies.Scorer: the configured proxies and their settings
    initial: pd.DataFrame | None = None  # the profile stage's table: measured samples with proxies
    data: Any = None  # token ids for methods that train (par), from ``search.<method>.data``
    seq_len: int = 192  # the measured sequence length (what hardware predictors count at)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # proxy rows by arch_id, computed once

    @property
    def method(self) -> str:
        return str(self.settings["method"])

    @property
    def block(self) -> Mapping[str, Any]:
        """This method's own settings, ``search.<method>``, as the config holds them."""
        return self.settings.get(self.method) or {}

    @property
    def options(self) -> Any:
        """This method's own settings as its ``settings`` dataclass."""
        return METHODS.get(self.method).options(self.block, self.method)

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])

    @property
    def objectives(self) -> dict[str, str]:
        return objectives_of(self.settings)

    @property
    def bounds(self) -> Bounds:
        return Bounds.from_settings(self.settings)

    def initial_specs(self) -> list[ArchSpec]:
        """The profile stage's architectures, in its order."""
        if self.initial is None or not len(self.initial):
            return []
        return [ArchSpec.from_json(s) for s in self.initial["spec"]]

    def score(self, specs: Sequence[ArchSpec]) -> pd.DataFrame:
        """Proxy values of specs (``arch_id`` + one column per proxy; costs left out). Proxies
        are deterministic, so each architecture is scored once per problem (and its copies:
        methods that run several times, as under ``verify``, share the rows)."""
        if not specs:
            return pd.DataFrame({"arch_id": []})
        for spec in specs:
            if spec.arch_id not in self.scores:
                self.scores[spec.arch_id] = self.scorer.row(spec, costs=False)
        return pd.DataFrame([self.scores[s.arch_id] for s in specs])


@dataclass
class SearchResult:
    archive: pd.DataFrame
    frontier: pd.DataFrame
    objectives: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)


METHODS: Registry[Method] = Registry("search method", package=__name__)


def get(name: str) -> Method:
    return METHODS.get(name)


# -- the common tables ---------------------------------------------------------------------------
def _parents(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [p for p in value.split(",") if p]
    return [str(p) for p in value]


def common_table(archive: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    """``archive`` in the common columns: missing ones filled (``iteration`` 0, ``origin`` "",
    no parents, ``in_bounds``/``feasible`` true, not measured, objectives NaN), ``parents`` as
    lists, types fixed, one row per ``arch_id`` (the first), ``COLUMNS`` first, then the
    objectives, then the method's own columns in their order."""
    df = archive.copy().reset_index(drop=True)
    if "arch_id" not in df.columns or "spec" not in df.columns:
        raise ValueError("archive: a method's archive needs arch_id and spec columns")
    df = df.drop_duplicates("arch_id", keep="first").reset_index(drop=True)
    defaults: dict[str, Any] = {"iteration": 0, "origin": "", "in_bounds": True, "measured": False, "on_front": False}
    for col, value in defaults.items():
        if col not in df.columns:
            df[col] = value
    df["parents"] = [_parents(v) for v in df["parents"]] if "parents" in df.columns else [[] for _ in range(len(df))]
    if "feasible" not in df.columns:
        df["feasible"] = df["in_bounds"]
    if "measured_at" not in df.columns:
        df["measured_at"] = pd.NA
    for col in objectives:
        if col not in df.columns:
            df[col] = np.nan
    df["iteration"] = df["iteration"].fillna(0).astype("int64")
    df["origin"] = df["origin"].fillna("").astype(str)
    for col in ("in_bounds", "feasible", "measured", "on_front"):
        df[col] = df[col].fillna(False).astype(bool)
    df["measured_at"] = pd.array(df["measured_at"], dtype="Int64")
    for col in objectives:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    lead = [*COLUMNS, *[c for c in objectives if c not in COLUMNS]]
    return df[lead + [c for c in df.columns if c not in lead]]


def frontier(archive: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    """The non-dominated rows among the feasible, measured candidates (predicted numbers never
    make the frontier)."""
    pool = archive[archive["feasible"] & archive["measured"]]
    if pool.empty:
        return pool.reset_index(drop=True)
    return pareto.pareto_front(pool, objectives).reset_index(drop=True)


__all__ = [
    "COLUMNS",
    "HARDWARE",
    "METHODS",
    "Bounds",
    "Hardware",
    "Measure",
    "Method",
    "MethodSettings",
    "SearchProblem",
    "SearchResult",
    "common_table",
    "frontier",
    "get",
    "measure_each",
    "objectives_of",
]
