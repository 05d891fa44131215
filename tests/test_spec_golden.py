"""Specs, ids, genomes, counts, entropy and latency features per space, against a recorded table.

``tests/data/spec_golden.json`` was written before the backbones became plugins; every sampled
spec of every space must still decode, hash, count and score exactly as it did (entropy to 1e-12:
PAR's sum runs in another order now). PAR's latency features were re-recorded when the block
descriptor replaced the per-layer view: a sub-layer without attention (feed-forward) now has 0
heads (0 inner width), where the view had carried the model's values into every sub-layer.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from paretolm.core.counting import count
from paretolm.core.spaces import SearchSpace
from paretolm.hardware.predictors.mlp import spec_features
from paretolm.proxies.entropy import EntropySettings, network_entropy

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "data" / "spec_golden.json").read_text())


def _specs(space: SearchSpace) -> list:
    specs = space.sample(12, seed=7)
    rng = random.Random(3)
    genome, _ = space.sample_genome(rng)
    children = (space.mutate(genome, 0.5, rng), space.crossover(genome, space.encode(specs[0]), rng))
    return specs + [child[1] for child in children if child]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_space_matches_recorded_table(name: str) -> None:
    space = SearchSpace.from_yaml(ROOT / "config" / "spaces" / f"{name}.yaml")
    specs = _specs(space)
    rows = GOLDEN[name]
    assert len(specs) == len(rows)
    for spec, row in zip(specs, rows, strict=True):
        assert spec.to_json() == row["spec"] and spec.arch_id == row["arch_id"]
        assert json.loads(json.dumps(space.encode(spec), default=str)) == row["genome"]
        assert count(spec, 64).to_dict() == row["counts"]
        assert spec_features(spec, 64, positions=4) == row["features"]
        assert math.isclose(network_entropy(spec, EntropySettings()), row["entropy"], rel_tol=1e-12)
        tuned = EntropySettings(beta=0.2, alpha=(0.3, 0.7))
        assert math.isclose(network_entropy(spec, tuned), row["entropy_b"], rel_tol=1e-12)
