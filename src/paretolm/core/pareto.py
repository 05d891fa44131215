"""Pareto dominance: non-dominated sorting, crowding distance, frontiers and hypervolume.

Objectives are given as a mapping ``{column: "max" | "min"}``. Internally every objective is
turned into one to minimise (maximised columns are negated), so point ``a`` dominates ``b`` when
it is no worse in every objective and strictly better in at least one. Equal points do not
dominate each other: duplicates of a frontier point are all on the frontier.

Used by the search (selection, frontier) and by the validation stages (distance to the true
frontier, hypervolume), so the functions take plain arrays or DataFrames and have no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

Senses = Mapping[str, str]


def _senses(objectives: Senses | Sequence[str]) -> dict[str, str]:
    if not isinstance(objectives, Mapping):
        objectives = {name: "min" for name in objectives}
    out = {}
    for name, sense in objectives.items():
        sense = str(sense).lower()
        if sense in ("max", "maximize", "maximise"):
            out[name] = "max"
        elif sense in ("min", "minimize", "minimise"):
            out[name] = "min"
        else:
            raise ValueError(f"objectives.{name}: sense must be 'max' or 'min', got {sense!r}")
    if not out:
        raise ValueError("objectives: need at least one objective")
    return out


def to_minimisation(df: pd.DataFrame, objectives: Senses | Sequence[str]) -> np.ndarray:
    """An ``(n, k)`` float array of the objective columns, maximised ones negated."""
    senses = _senses(objectives)
    missing = [c for c in senses if c not in df.columns]
    if missing:
        raise ValueError(f"objectives: columns {missing} not in the table (has {list(df.columns)})")
    cols = []
    for name, sense in senses.items():
        col = pd.to_numeric(df[name], errors="raise").to_numpy(dtype=float)
        if np.isnan(col).any():
            raise ValueError(f"objectives.{name}: column has missing values")
        cols.append(-col if sense == "max" else col)
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def dominance_matrix(points: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point ``i`` dominates point ``j`` (all objectives minimised)."""
    p = np.asarray(points, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"points: expected a 2-D array, got shape {p.shape}")
    le = (p[:, None, :] <= p[None, :, :]).all(axis=2)
    lt = (p[:, None, :] < p[None, :, :]).any(axis=2)
    return le & lt


def non_dominated_sort(points: np.ndarray) -> list[np.ndarray]:
    """Fast non-dominated sorting (Deb et al., NSGA-II): the fronts as arrays of row indices,
    best first. Every point is in exactly one front; front 0 is the Pareto frontier."""
    p = np.asarray(points, dtype=float)
    n = len(p)
    if n == 0:
        return []
    dom = dominance_matrix(p)
    count = dom.sum(axis=0)  # how many points dominate each point
    fronts = []
    current = np.flatnonzero(count == 0)
    while current.size:
        fronts.append(current)
        count = count - dom[current].sum(axis=0)
        count[current] = -1  # placed
        current = np.flatnonzero(count == 0)
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each point within one front: the sum over objectives of the
    normalised gap between its neighbours. Boundary points get ``inf``, so they are kept first."""
    p = np.asarray(points, dtype=float)
    n, k = p.shape
    dist = np.zeros(n)
    if n <= 2:
        dist[:] = np.inf
        return dist
    for j in range(k):
        order = np.argsort(p[:, j], kind="stable")
        span = p[order[-1], j] - p[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            gaps = (p[order[2:], j] - p[order[:-2], j]) / span
            dist[order[1:-1]] += gaps
    return dist


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of an ``(n, k)`` array (all objectives minimised) that no other
    row dominates. A NaN compares false, so a row holding one is never dominated."""
    p = np.asarray(points, dtype=float)
    if p.ndim == 2 and len(p) == 0:
        return np.zeros(0, dtype=bool)
    return ~dominance_matrix(p).any(axis=0)


def pareto_mask(df: pd.DataFrame, objectives: Senses | Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows no other row dominates."""
    return non_dominated(to_minimisation(df, objectives))


def pareto_front(df: pd.DataFrame, objectives: Senses | Sequence[str]) -> pd.DataFrame:
    """The non-dominated rows of ``df`` (original order and index kept).

    ``objectives`` maps column -> ``"max"``/``"min"``; a plain list means minimise all."""
    return df[pareto_mask(df, objectives)]


def select(df: pd.DataFrame, objectives: Senses | Sequence[str], k: int) -> pd.DataFrame:
    """NSGA-II selection: the ``k`` best rows by front, ties within the last front broken by
    larger crowding distance (then by original order, so the result is deterministic)."""
    points = to_minimisation(df, objectives)
    chosen: list[int] = []
    for front in non_dominated_sort(points):
        if len(chosen) + len(front) <= k:
            chosen.extend(front.tolist())
            continue
        cd = crowding_distance(points[front])
        order = sorted(range(len(front)), key=lambda i: (-cd[i], front[i]))
        chosen.extend(front[i] for i in order[: k - len(chosen)])
        break
    return df.iloc[sorted(chosen)]


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (all objectives minimised;
    negate maximised ones first, e.g. with ``to_minimisation``). Exact for 1, 2 and 3 objectives:
    a sweep in 2-D, and in 3-D a sweep over the third objective summing 2-D slices. Points not
    strictly better than the reference in every objective contribute nothing."""
    p = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if p.ndim != 2 or p.shape[1] != ref.shape[0]:
        raise ValueError(f"reference: has {ref.shape[0]} values but points have shape {p.shape}")
    if p.size == 0:
        return 0.0
    p = p[(p < ref).all(axis=1)]
    if len(p) == 0:
        return 0.0
    k = p.shape[1]
    if k == 1:
        return float(ref[0] - p[:, 0].min())
    if k == 2:
        return _hv2(p, ref)
    if k == 3:
        order = np.argsort(p[:, 2], kind="stable")
        p = p[order]
        total = 0.0
        for i in range(len(p)):
            upper = p[i + 1, 2] if i + 1 < len(p) else ref[2]
            depth = upper - p[i, 2]
            if depth > 0:
                total += _hv2(p[: i + 1, :2], ref[:2]) * depth
        return float(total)
    raise ValueError(f"points: hypervolume supports 1 to 3 objectives, got {k}")


def _hv2(p: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume: sort by the first objective and add the staircase's rectangles."""
    order = np.lexsort((p[:, 1], p[:, 0]))
    steps: list[tuple[float, float]] = []  # the non-dominated points, x increasing, y decreasing
    best_y = ref[1]
    for x, y in p[order]:
        if y < best_y:
            steps.append((x, y))
            best_y = y
    area = 0.0
    for i, (x, y) in enumerate(steps):
        x_next = steps[i + 1][0] if i + 1 < len(steps) else ref[0]
        area += (x_next - x) * (ref[1] - y)
    return float(area)


def hypervolume_of(df: pd.DataFrame, objectives: Senses, reference: Mapping[str, float]) -> float:
    """Hypervolume of a table's rows for named objectives; ``reference`` is given in the columns'
    own units (for a maximised column, the worst value still counted, e.g. 0 parameters)."""
    senses = _senses(objectives)
    missing = [c for c in senses if c not in reference]
    if missing:
        raise ValueError(f"reference: no reference value for {missing}")
    ref = [-reference[c] if s == "max" else reference[c] for c, s in senses.items()]
    return hypervolume(to_minimisation(df, senses), ref)


def hypervolume_improvements(front: np.ndarray, candidates: np.ndarray, reference: Sequence[float]) -> np.ndarray:
    """For each row of ``candidates``: how much it would add to the hypervolume of ``front``
    (all objectives minimised), ``hypervolume(front + [c]) - hypervolume(front)``. Exact, like
    ``hypervolume``, but computed by moocore's C implementation (it comes with pymoo), since the
    search asks for thousands of these per round."""
    import moocore

    ref = np.asarray(reference, dtype=float)
    F = np.asarray(front, dtype=float).reshape(-1, len(ref))
    C = np.asarray(candidates, dtype=float).reshape(-1, len(ref))
    F = F[(F < ref).all(axis=1)]
    base = float(moocore.hypervolume(F, ref=ref)) if len(F) else 0.0
    out = np.zeros(len(C))
    for i, c in enumerate(C):
        if (c < ref).all():
            out[i] = max(0.0, float(moocore.hypervolume(np.vstack([F, c]), ref=ref)) - base)
    return out
