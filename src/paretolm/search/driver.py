"""How a method's candidates get their hardware numbers (``search.measure``), and the run's record.

* ``all``: every candidate a method asks about is measured on the target (through the
  measurement cache), as LTS does.
* ``verify``: latency and peak memory come from predictors (``paretolm.hardware.predictors.committee``) trained on
  the measurements made so far: the profile stage's, plus ``verify.initial`` candidates picked by
  active sampling. Then, in rounds: refit the predictors, run the method on predicted numbers,
  and measure only the candidates that could still be on the frontier: those whose optimistic
  point (each predicted number lowered by ``band`` standard deviations of its uncertainty) no
  measured point dominates, best first, at most ``batch`` per round, plus the ``explore`` most
  uncertain candidates. The predictions those candidates had before being measured are kept:
  they are held-out errors of the predictor. The rounds stop when nothing is left that could be
  on the frontier, when a round leaves the measured frontier unchanged or grows its hypervolume by
  less than ``tolerance`` (relative), or at ``max_rounds`` / ``max_measurements``.

**Order of the batch.** Greedy by hypervolume: the candidate whose predicted point would add
most to the hypervolume of the measured frontier is taken, its predicted point joins that
frontier as if measured (so the next pick must add something beyond it, which spreads the batch
along the frontier), and so on; candidates whose predicted point adds nothing are ranked by what
their optimistic point would add. The batch is the one that most raises the predicted
hypervolume.

Either way the frontier is made of measured points only, every archive row says whether its
numbers were ``measured``, and the run records its measurements, the hypervolume of its frontier
against a fixed reference point (``search.reference``, else 10 % of the range beyond the worst
profiled value of each objective) and that hypervolume after each measurement spent.

**Determinism and resumption.** Every choice is a function of the seed and of the measurements,
and measurements are read back from the cache: a rerun, or a run killed at any point and started
again, replays the same rounds without measuring anything twice and ends with the same tables.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core import pareto
from paretolm.core.arch import ArchSpec
from paretolm.core.settings import check, from_config, setting
from paretolm.hardware.predictors.committee import KINDS, Choice, active_order, fit, heldout_metrics
from paretolm.search.methods import (
    HARDWARE,
    Measure,
    SearchProblem,
    SearchResult,
    common_table,
    frontier,
    get,
    objectives_of,
)

MAX = 10_000_000
log = logging.getLogger(__name__)


# -- the device as one run sees it ---------------------------------------------------------------
class Device:
    """Measurements of one run, each architecture at most once, numbered in the order they were
    made (the profile stage's first). ``predicted`` keeps, per architecture measured under
    ``verify``, what the predictor said before the measurement."""

    def __init__(self, measure: Measure, initial: pd.DataFrame | None = None, proxy_names: Sequence[str] = ()):
        self.measure_fn = measure
        self.values: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, ArchSpec] = {}
        self.predicted: dict[str, dict[str, float]] = {}
        self.profiled = 0
        if initial is not None and len(initial):
            # the profile table holds the measurement, the spec and the proxy columns
            skip = {"arch_id", "spec"}
            cols = [
                c
                for c in initial.columns
                if c not in skip and not any(c == p or c.startswith(p + "_") for p in proxy_names)
            ]
            for row in initial.to_dict("records"):
                spec = ArchSpec.from_json(row["spec"])
                if spec.arch_id not in self.values:
                    self._add(spec, {c: row[c] for c in cols})
            self.profiled = len(self.values)

    def _add(self, spec: ArchSpec, values: Mapping[str, Any]) -> dict[str, Any]:
        record = {k: v for k, v in values.items() if k != "arch_id"}
        record["measured_at"] = len(self.values) + 1
        self.values[spec.arch_id] = record
        self.specs[spec.arch_id] = spec
        return record

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, arch_id: object) -> bool:
        return arch_id in self.values

    def measure(self, spec: ArchSpec) -> dict[str, Any]:
        if spec.arch_id in self.values:
            return self.values[spec.arch_id]
        return self._add(spec, self.measure_fn(spec))

    def all(self, specs: Sequence[ArchSpec]) -> list[dict[str, Any]]:
        """The ``hardware`` of ``search.measure: all``: every spec measured."""
        return [{**self.measure(s), "measured": True} for s in specs]

    def table(self) -> tuple[list[ArchSpec], pd.DataFrame]:
        ids = list(self.values)
        return [self.specs[a] for a in ids], pd.DataFrame([self.values[a] for a in ids])


class Predicted:
    """The ``hardware`` of a ``verify`` round: measured numbers where there are some, else the
    predictor's (``measured`` false, with ``<target>_sigma``, the relative uncertainty)."""

    def __init__(self, device: Device, predictor: Any):
        self.device = device
        self.predictor = predictor
        self.cache: dict[str, dict[str, Any]] = {}

    def __call__(self, specs: Sequence[ArchSpec]) -> list[dict[str, Any]]:
        todo = [s for s in specs if s.arch_id not in self.device and s.arch_id not in self.cache]
        todo = list({s.arch_id: s for s in todo}.values())
        if todo:
            table = self.predictor.predict(todo)
            for spec, row in zip(todo, table.to_dict("records"), strict=True):
                self.cache[spec.arch_id] = {**row, "measured": False}
        out = []
        for spec in specs:
            if spec.arch_id in self.device:
                out.append({**self.device.values[spec.arch_id], "measured": True})
            else:
                out.append(dict(self.cache[spec.arch_id]))
        return out


# -- verify ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifySettings:
    """How search.measure verify chooses what to measure (paretolm.search.driver)."""

    predictor: Choice = setting("auto", doc="auto picks the kind with the lowest out-of-fold error.")
    folds: int = setting(5, minimum=2, maximum=MAX)
    initial: int = setting(
        16, minimum=0, maximum=MAX, doc="Measurements chosen by active sampling before the first round."
    )
    batch: int = setting(
        16, minimum=1, maximum=65536, doc="Candidates measured per round at most (the most promising)."
    )
    explore: int = setting(2, minimum=0, maximum=MAX, doc="The most uncertain candidates measured per round besides.")
    band: float = setting(
        2.0, minimum=0, maximum=1000, doc="Optimism in standard deviations of the predictor's uncertainty."
    )
    tolerance: float = setting(
        0.002,
        minimum=0,
        maximum=1,
        doc="Stop when a round grows the measured frontier's hypervolume less than this (relative).",
    )
    max_rounds: int = setting(20, minimum=1, maximum=MAX)
    max_measurements: int | None = setting(
        None, minimum=0, maximum=MAX, doc="Measurements the search may add to the profile stage's."
    )

    def __post_init__(self) -> None:
        check(self, "search.verify")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> VerifySettings:
        return from_config(cls, settings["verify"], "search.verify")

    def kinds(self) -> tuple[str, ...]:
        return KINDS if self.predictor == "auto" else (self.predictor,)


class Verify:
    """The rounds of ``search.measure: verify`` (module docstring) for one method on one target."""

    MIN_ROWS = 8  # measurements the first fit needs at least

    def __init__(self, method: Any, problem: SearchProblem, device: Device, reference: Mapping[str, float] | None):
        self.method = method
        self.problem = problem
        self.device = device
        self.seq_len = problem.seq_len
        self.reference = dict(reference) if reference else None
        self.cfg = VerifySettings.from_settings(problem.settings)
        self.objectives = objectives_of(problem.settings)
        self.bounds = problem.bounds
        self.first_seen: dict[str, dict[str, Any]] = {}  # arch_id -> its row from the round that proposed it
        self.rounds: list[dict[str, Any]] = []
        self.stopped = ""
        self.predictor: Any = None
        self.chosen: dict[str, str] = {}  # target -> predictor kind last chosen by cross-validation
        self.chosen_at = 0  # measurements when it was chosen

    def budget_left(self) -> float:
        if self.cfg.max_measurements is None:
            return math.inf
        return self.cfg.max_measurements - (len(self.device) - self.device.profiled)

    def design(self) -> None:
        """The initial design: ``initial`` candidates (at least enough for a first fit) drawn from
        the space, in bounds, chosen by active sampling. They train the predictors; they are not
        candidates of the method."""
        want = int(min(max(self.cfg.initial, self.MIN_ROWS - len(self.device)), self.budget_left()))
        if want <= 0:
            return
        rng = random.Random(self.problem.seed)
        pool: dict[str, ArchSpec] = {}
        for _ in range(20 * want):
            _, spec = self.problem.space.sample_genome(rng)
            if spec.arch_id not in self.device:
                pool.setdefault(spec.arch_id, spec)
        specs = list(pool.values())
        scores = self.problem.score(specs)
        specs = [s for s, row in zip(specs, scores.to_dict("records"), strict=True) if self.bounds.params_ok(row)]
        for i in active_order(specs, list(self.device.specs.values()), want, self.seq_len):
            self.device.measure(specs[i])
        log.info("verify: measured %d design points chosen by active sampling", want)

    def fit(self) -> Any:
        """Refit the predictors. The kind of each is chosen again (all kinds cross-validated)
        when the measurements have grown by half since the last choice; in between only the
        chosen kind is refitted, which is what makes a round cheap."""
        specs, table = self.device.table()
        choose = not self.chosen or len(specs) >= 1.5 * self.chosen_at
        kinds = self.cfg.kinds() if choose else {t: (k,) for t, k in self.chosen.items()}
        predictor = fit(specs, table, self.seq_len, kinds=kinds, folds=self.cfg.folds, seed=self.problem.seed)
        if choose:
            self.chosen = {t: m.kind for t, m in predictor.models.items()}
            self.chosen_at = len(specs)
        return predictor

    def archive(self, result: SearchResult, round_: int) -> pd.DataFrame:
        """The round's archive plus every candidate measured in an earlier round and not proposed
        this time (with its row from the round that proposed it), with the device's numbers."""
        table = common_table(result.archive, self.objectives)
        table["round"] = round_
        for row in table.to_dict("records"):
            self.first_seen.setdefault(row["arch_id"], row)
        have = set(table["arch_id"])
        extra = [row for a, row in self.first_seen.items() if a not in have and a in self.device]
        if extra:
            table = pd.concat([table, common_table(pd.DataFrame(extra), self.objectives)], ignore_index=True)
        return update_measured(table, self.device, self.problem)

    def select(self, archive: pd.DataFrame) -> tuple[list[str], dict[str, int]]:
        """The arch_ids to measure this round (module docstring) and the size of the band."""
        obj = self.objectives
        pool = archive[archive["in_bounds"]]
        pool = pool[np.isfinite(pool[list(obj)].to_numpy(dtype=float)).all(axis=1)].reset_index(drop=True)
        unmeasured = np.flatnonzero(~pool["measured"].to_numpy(dtype=bool))
        if not len(unmeasured):
            return [], {"band": 0, "unmeasured": 0}
        points = pareto.to_minimisation(pool, obj)
        F = points[pool["on_front"].to_numpy(dtype=bool)]
        # relative uncertainty of each minimised number (proxies are exact)
        sigma = np.zeros_like(points)
        for j, col in enumerate(obj):
            if col in HARDWARE and f"{col}_sigma" in pool.columns:
                sigma[:, j] = pool[f"{col}_sigma"].fillna(0.0).to_numpy(dtype=float)
        optimistic = points * np.exp(-self.cfg.band * sigma)
        could = np.ones(len(pool), dtype=bool)  # could be under the latency bound
        if self.bounds.latency_ms_max is not None:
            lat_sigma = pool["latency_ms_sigma"].fillna(0.0) if "latency_ms_sigma" in pool.columns else 0.0
            lat = pool["latency_ms"] * np.exp(-self.cfg.band * lat_sigma)
            could = (lat <= self.bounds.latency_ms_max).to_numpy(dtype=bool)
        band = unmeasured[could[unmeasured] & ~_weakly_dominated(F, optimistic[unmeasured])]
        ref = np.array([-v if obj[c] == "max" else v for c, v in self.reference.items()])
        room = int(min(self.cfg.batch, self.budget_left()))
        picks = _greedy_improvement(F, points[band], optimistic[band], ref, room)
        chosen = [int(band[i]) for i in picks]
        room = int(min(self.cfg.explore, self.budget_left() - len(chosen)))
        if room > 0 and len(band):  # a few of the most uncertain, for the predictor's sake
            spread = np.sqrt((sigma**2).sum(axis=1))
            rest = [
                int(k)
                for k in unmeasured[np.argsort(-spread[unmeasured], kind="stable")]
                if int(k) not in chosen and could[int(k)]
            ]
            chosen += rest[:room]
        return [pool.at[k, "arch_id"] for k in chosen], {"band": int(len(band)), "unmeasured": int(len(unmeasured))}

    def hypervolume(self, archive: pd.DataFrame) -> float:
        front = archive[archive["on_front"]]
        return pareto.hypervolume_of(front, self.objectives, self.reference) if len(front) else 0.0

    def run(self) -> SearchResult:
        self.design()
        result: SearchResult | None = None
        archive = pd.DataFrame()
        for r in range(1, self.cfg.max_rounds + 1):
            t0 = time.perf_counter()
            self.predictor = self.fit()
            result = self.method.run(dataclasses.replace(self.problem, hardware=Predicted(self.device, self.predictor)))
            archive = mark_frontier(self.archive(result, r), self.objectives)
            if self.reference is None:  # no profile table: place it by the first round's candidates
                self.reference = reference_point(self.objectives, archive)
            before = archive[archive["on_front"]]["arch_id"].tolist()
            hv_before = self.hypervolume(archive)
            picks, seen = self.select(archive)
            rows = archive.set_index("arch_id")
            for aid in picks:
                self.device.predicted[aid] = {c: float(rows.at[aid, c]) for c in HARDWARE if c in rows.columns}
                self.device.measure(ArchSpec.from_json(rows.at[aid, "spec"]))
            archive = mark_frontier(update_measured(archive, self.device, self.problem), self.objectives)
            after = archive[archive["on_front"]]["arch_id"].tolist()
            hv_after = self.hypervolume(archive)
            self.rounds.append(
                {
                    "round": r,
                    "candidates": int(len(archive)),
                    **seen,
                    "measured": len(picks),
                    "measurements": len(self.device),
                    "frontier": len(after),
                    "hypervolume": hv_after,
                    "seconds": time.perf_counter() - t0,
                    "predictor": self.predictor.summary(),
                }
            )
            log.info(
                "verify round %d: %d candidates, %d in the band, measured %d (total %d), frontier %d, hypervolume %.6g",
                r,
                len(archive),
                seen["band"],
                len(picks),
                len(self.device),
                len(after),
                hv_after,
            )
            gain = (hv_after - hv_before) / hv_before if hv_before > 0 else math.inf
            if not picks:
                self.stopped = "nothing left that could be on the frontier"
            elif set(after) == set(before):
                self.stopped = "a round left the measured frontier unchanged"
            elif gain < self.cfg.tolerance:
                self.stopped = f"a round grew the hypervolume by {gain:.3%}, under the tolerance"
            elif self.budget_left() <= 0:
                self.stopped = "max_measurements reached"
            if self.stopped:
                break
        else:
            self.stopped = "max_rounds reached"
        assert result is not None
        result.archive = archive
        result.stats = {
            **result.stats,
            "verify": {"rounds": self.rounds, "stopped": self.stopped, "predictor": self.predictor.summary()},
        }
        return result


def _weakly_dominated(F: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per row of ``points``: is some row of ``F`` no worse in every objective (minimised)?"""
    out = np.zeros(len(points), dtype=bool)
    if not len(F):
        return out
    step = max(1, 2_000_000 // max(1, F.size))
    for s in range(0, len(points), step):
        out[s : s + step] = (F[None, :, :] <= points[s : s + step, None, :]).all(axis=2).any(axis=1)
    return out


def _greedy_improvement(
    front: np.ndarray, mean: np.ndarray, optimistic: np.ndarray, reference: np.ndarray, k: int
) -> list[int]:
    """Up to ``k`` row indices of the candidates, chosen one at a time by the hypervolume their
    predicted point would add to ``front`` (then, among those adding nothing, by what their
    optimistic point would add), each pick's predicted point joining the front before the next:
    the batch that most raises the predicted hypervolume, spread along the frontier. The gains
    only shrink as the front grows, so a stale gain that still tops the queue is recomputed once
    and kept if it stays on top (lazy greedy). Picks stop when no candidate would add anything."""
    if k <= 0 or not len(mean):
        return []
    current = np.asarray(front, dtype=float).reshape(-1, len(reference))
    gains = np.column_stack(
        [
            pareto.hypervolume_improvements(current, mean, reference),
            pareto.hypervolume_improvements(current, optimistic, reference),
        ]
    )
    # (negated gains, index, size of the front they were computed against)
    heap = [(-gains[i, 0], -gains[i, 1], i, len(current)) for i in range(len(mean))]
    heapq.heapify(heap)
    picks: list[int] = []
    while heap and len(picks) < k:
        g0, g1, i, seen = heapq.heappop(heap)
        if g0 == 0 and g1 == 0:
            break
        if seen != len(current):  # the front grew since this gain was computed
            fresh = (
                pareto.hypervolume_improvements(current, mean[i : i + 1], reference)[0],
                pareto.hypervolume_improvements(current, optimistic[i : i + 1], reference)[0],
            )
            heapq.heappush(heap, (-fresh[0], -fresh[1], i, len(current)))
            continue
        picks.append(i)
        current = np.vstack([current, mean[i]])
    return picks


# -- the record of a run -------------------------------------------------------------------------
def update_measured(archive: pd.DataFrame, device: Device, problem: SearchProblem) -> pd.DataFrame:
    """Rows the device has measured get its numbers, ``measured`` and ``measured_at``; under
    ``verify`` the predictions are kept as ``<target>_predicted`` (for a measured row: what the
    predictor said before the measurement); ``feasible`` is recomputed from the final numbers."""
    df = archive.copy().reset_index(drop=True)
    hit = df["arch_id"].map(lambda a: a in device).astype(bool)
    if device.predicted or any(f"{t}_sigma" in df.columns for t in HARDWARE):
        for target in HARDWARE:
            if target in df.columns:
                before = df["arch_id"].map(lambda a, t=target: device.predicted.get(a, {}).get(t, np.nan))
                df[f"{target}_predicted"] = before.where(hit, df[target]).astype(float)
    if hit.any():
        values = pd.DataFrame.from_dict({a: device.values[a] for a in df["arch_id"][hit]}, orient="index")
        for col in values.columns:
            mapped = df["arch_id"].map(values[col])
            df[col] = mapped.where(hit, df[col]) if col in df.columns else mapped.where(hit)
    df["measured"] = hit
    df["measured_at"] = pd.array(df["measured_at"].where(hit), dtype="Int64") if "measured_at" in df else pd.NA
    bounds = problem.bounds
    df["feasible"] = [bool(r["in_bounds"]) and bounds.latency_ok(r) for r in df.to_dict("records")]
    return common_table(df, objectives_of(problem.settings))


def mark_frontier(archive: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    front = frontier(archive, objectives)
    archive = archive.copy()
    archive["on_front"] = archive["arch_id"].isin(set(front["arch_id"]))
    return archive


def reference_point(objectives: Mapping[str, str], table: pd.DataFrame) -> dict[str, float]:
    """10 % of each objective's range beyond its worst value in ``table``."""
    ref = {}
    for col, sense in objectives.items():
        values = pd.to_numeric(table[col], errors="coerce").dropna().to_numpy(dtype=float)
        if not len(values):
            raise ValueError(f"search.reference: no values of {col} to place the reference point")
        span = float(values.max() - values.min()) or abs(float(values.max())) or 1.0
        ref[col] = float(values.min() - 0.1 * span) if sense == "max" else float(values.max() + 0.1 * span)
    return ref


def hypervolume_trace(
    archive: pd.DataFrame, objectives: Mapping[str, str], reference: Mapping[str, float], total: int, points: int = 60
) -> list[list[float]]:
    """``[measurements spent, hypervolume of the frontier of what was measured by then]`` at up to
    ``points`` steps, ending at ``total`` measurements."""
    pool = archive[archive["feasible"] & archive["measured"]]
    pool = pool[np.isfinite(pool[list(objectives)].to_numpy(dtype=float)).all(axis=1)]
    if pool.empty:
        return [[float(total), 0.0]]
    order = pool["measured_at"].astype("int64").to_numpy()
    steps = sorted(set(np.unique(np.linspace(order.min(), order.max(), num=min(points, len(order)), dtype=int))))
    out = []
    for k in steps:
        sub = pool[order <= k]
        front = pareto.pareto_front(sub, objectives)
        out.append([float(k), pareto.hypervolume_of(front, objectives, reference)])
    out.append([float(total), out[-1][1]])
    return out


def search(problem: SearchProblem, measure: Measure, *, reference: Mapping[str, float] | None = None) -> SearchResult:
    """Run ``problem.method`` with the configured measurement strategy; the result's archive and
    frontier are in the common columns and its stats are the run's record (module docstring)."""
    method = get(problem.method)
    objectives = objectives_of(problem.settings)
    device = Device(measure, problem.initial, list(problem.scorer.names))
    if reference is None and problem.initial is not None and len(problem.initial):
        reference = reference_point(objectives, problem.initial)
    t0 = time.perf_counter()
    mode = problem.settings["measure"]
    if mode == "all":
        result = method.run(dataclasses.replace(problem, hardware=device.all))
        archive = mark_frontier(update_measured(common_table(result.archive, objectives), device, problem), objectives)
        if reference is None:
            reference = reference_point(objectives, archive[archive["measured"]])
    else:
        verify = Verify(method, problem, device, reference)
        result = verify.run()
        archive = mark_frontier(result.archive, objectives)
        reference = verify.reference
    assert reference is not None
    front = archive[archive["on_front"]].reset_index(drop=True)
    stats = {
        "method": problem.method,
        "measure": mode,
        **result.stats,
        "candidates": int(len(archive)),
        "frontier": int(len(front)),
        "measurements": {"profile": device.profiled, "search": len(device) - device.profiled, "total": len(device)},
        "hypervolume": pareto.hypervolume_of(front, objectives, reference) if len(front) else 0.0,
        "reference": dict(reference),
        "trace": hypervolume_trace(archive, objectives, reference, len(device)),
        "seconds": time.perf_counter() - t0,
    }
    if device.predicted:
        stats["heldout"] = heldout(archive, device)
    return SearchResult(archive, front, objectives, stats)


def heldout(archive: pd.DataFrame, device: Device) -> dict[str, Any]:
    """Held-out predictor error (MAPE %, Kendall's tau) on the final frontier's measured points
    and on every point measured in the rounds: each prediction was made before its measurement."""
    out: dict[str, Any] = {}
    for name, rows in (("frontier", archive[archive["on_front"]]), ("measured", archive[archive["measured"]])):
        ids = [a for a in rows["arch_id"] if a in device.predicted]
        out[name] = {}
        for target in HARDWARE:
            truth = [float(device.values[a].get(target, np.nan)) for a in ids]
            guess = [device.predicted[a].get(target, np.nan) for a in ids]
            out[name][target] = heldout_metrics(truth, guess)
    return out


__all__ = [
    "Device",
    "Predicted",
    "Verify",
    "VerifySettings",
    "heldout",
    "hypervolume_trace",
    "mark_frontier",
    "reference_point",
    "search",
    "update_measured",
]
