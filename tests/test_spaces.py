"""Search spaces: the shipped YAML files, seeded sampling under constraints, mutation, crossover,
genome encoding."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.core.spaces import SearchSpace, load_space

SPACES = Path(__file__).resolve().parents[1] / "config" / "spaces"
SPACE_NAMES = sorted(p.stem for p in SPACES.glob("*.yaml"))


def space(name: str) -> SearchSpace:
    return load_space(name, SPACES)


def test_the_issue_spaces_are_shipped() -> None:
    assert {"lts_gpt2", "lts_transformer_xl", "opt_350m", "merino", "par", "speedlimit_bert", "gpt2_cpu_small"} <= set(
        SPACE_NAMES
    )
    gpt2 = space("lts_gpt2")
    assert gpt2.genes["n_layer"].choices == tuple(range(2, 17))
    assert gpt2.genes["d_model"].choices == tuple(range(128, 1025, 64))
    assert gpt2.genes["d_inner"].choices == tuple(range(128, 4097, 64))
    assert gpt2.genes["n_head"].choices == (2, 4, 8) and gpt2.genes["div_val"].choices == (1, 2, 4)
    opt = space("opt_350m")
    assert opt.genes["n_layer"].choices == tuple(range(3, 30))
    assert opt.genes["d_model"].choices == tuple(range(512, 1473, 64))
    assert opt.genes["d_inner"].choices == tuple(range(512, 6081, 64))
    assert opt.genes["n_head"].choices == (2, 4, 8, 16)
    m = space("merino")
    assert m.genes["d_model"].choices == (64, 128, 256, 384, 512, 640, 768, 896, 1024)
    assert m.genes["ffn_ratio"].choices == (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    assert m.genes["n_layer"].choices == (1, 2, 3, 4) and m.fixed["n_block"] == 4
    p = space("par")
    assert p.fixed["n_sublayer"] == 32 and p.genes["layers"].choices == ("s", "f", "i")
    b = space("speedlimit_bert")
    assert b.genes["n_layer"].choices == tuple(range(1, 6))
    assert b.genes["d_model"].choices == tuple(range(120, 529, 12))
    assert b.genes["d_inner"].choices == tuple(range(128, 1017, 12))


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sampling_is_seeded_unique_and_in_the_space(name: str) -> None:
    sp = space(name)
    a, b, c = sp.sample(60, seed=7), sp.sample(60, seed=7), sp.sample(60, seed=8)
    assert [s.arch_id for s in a] == [s.arch_id for s in b]
    assert [s.arch_id for s in a] != [s.arch_id for s in c]
    assert len({s.arch_id for s in a}) == 60
    for spec in a:
        assert spec.backbone == sp.backbone
        assert sp.violation(spec) is None
        for key, value in sp.fixed.items():
            if key not in ("n_block", "n_sublayer"):
                assert getattr(spec, key) == value
        genome = sp.encode(spec)
        for key, gene in sp.keys():
            assert genome[key] in gene.choices, key
        assert sp.decode(genome) == spec


@pytest.mark.parametrize("name", ["lts_gpt2", "lts_transformer_xl", "gpt2_cpu_small", "opt_350m"])
def test_lts_constraints_hold(name: str) -> None:
    sp = space(name)
    ratio = sp.constraints.get("d_inner_min_ratio")
    for spec in sp.sample(200, seed=1):
        assert all(spec.d_model % h == 0 for h in spec.n_head)
        if ratio:
            assert all(d >= ratio * spec.d_model for d in spec.d_inner)
        assert len(spec.n_head) == len(spec.d_inner) == spec.n_layer


def test_heterogeneous_and_homogeneous_spaces() -> None:
    hetero = space("lts_transformer_xl").sample(100, seed=2)
    assert any(len(set(s.d_inner)) > 1 for s in hetero if s.n_layer > 1)
    homo = space("lts_transformer_xl_homogeneous").sample(100, seed=2)
    for spec in homo:
        assert len(set(spec.n_head)) == 1 and len(set(spec.d_inner)) == 1
        assert spec.d_inner[0] >= 1.7 * spec.d_model


def test_merino_and_par_and_bert_samples() -> None:
    for spec in space("merino").sample(100, seed=3):
        widths = [b.d_model for b in spec.blocks]
        assert len(widths) == 4 and widths == sorted(widths)
        assert all(1 <= b.n_layer <= 4 for b in spec.blocks)
    kinds = "".join(s.layers for s in space("par").sample(100, seed=3))
    assert len(kinds) == 3200 and all(abs(kinds.count(k) / 3200 - 1 / 3) < 0.05 for k in "sfi")
    for spec in space("speedlimit_bert").sample(100, seed=3):
        assert spec.d_model % spec.n_head == 0 and 1 <= spec.n_layer <= 5


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_mutation_and_crossover_stay_in_the_space(name: str) -> None:
    sp = space(name)
    rng = random.Random(4)
    parents = [sp.sample_genome(rng) for _ in range(10)]
    for (ga, sa), (gb, _) in zip(parents, parents[1:], strict=False):
        same = sp.mutate(ga, 0.0, rng)
        assert same is not None and same[1] == sa
        child = sp.mutate(ga, 0.5, rng)
        assert child is not None
        genome, spec = child
        assert sp.violation(spec) is None and sp.decode(genome) == spec
        crossed = sp.crossover(ga, gb, rng)
        assert crossed is not None
        genome, spec = crossed
        assert sp.violation(spec) is None and sp.decode(genome) == spec
        # genes that are never repaired come from one of the parents
        for key, gene in sp.keys():
            if gene.name not in ("n_head", "d_inner", "n_kv_head"):
                assert genome[key] in (ga[key], gb[key]), key


def test_mutation_changes_about_p_of_the_genes() -> None:
    sp = space("par")
    rng = random.Random(0)
    genome, _ = sp.sample_genome(rng)
    changed = 0
    for _ in range(200):
        child, _ = sp.mutate(genome, 0.3, rng)
        changed += sum(child[k] != genome[k] for k in genome)
    # each gene is resampled with p = 0.3 and then differs with probability 2/3
    assert abs(changed / (200 * 32) - 0.2) < 0.02


def test_decoder_parameter_bounds_constraint() -> None:
    data = {
        "backbone": "bert",
        "fixed": {"vocab_size": 30522, "max_seq_len": 128},
        "genes": {
            "n_layer": {"min": 1, "max": 5},
            "d_model": {"min": 120, "max": 528, "step": 12},
            "n_head": [1, 2, 3, 4, 6, 12],
            "d_inner": {"min": 128, "max": 1016, "step": 12},
        },
        "constraints": {"decoder_params": {"min": 1_000_000, "max": 2_000_000}},
    }
    sp = SearchSpace.from_dict(data, name="bounded")
    for spec in sp.sample(50, seed=0):
        assert 1_000_000 <= count(spec).decoder_params <= 2_000_000
    impossible = SearchSpace.from_dict({**data, "constraints": {"decoder_params": {"max": 10}}}, name="x")
    impossible.max_tries = 50
    with pytest.raises(ValueError, match="^constraints"):
        impossible.sample(1, seed=0)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"genes": {}}, "backbone"),
        ({"backbone": "gpt2"}, "genes"),
        ({"backbone": "gpt2", "genes": {"d_model": {"min": 2, "max": 1}}}, r"genes\.d_model"),
        ({"backbone": "gpt2", "genes": {"d_model": {"step": 2}}}, r"genes\.d_model"),
        ({"backbone": "gpt2", "genes": {"d_model": "big"}}, r"genes\.d_model"),
        ({"backbone": "gpt2", "genes": {"n_head": {"choices": [2], "per": "row"}}}, r"genes\.n_head\.per"),
        ({"backbone": "gpt2", "genes": {"n_head": {"choices": [2], "per": "layer"}}}, r"genes\.n_head"),
        ({"backbone": "merino", "genes": {"d_model": {"choices": [64], "per": "block"}}}, r"genes\.d_model"),
        ({"backbone": "gpt2", "genes": {"n_layer": [1]}, "constraints": {"speed": 1}}, r"constraints\.speed"),
    ],
)
def test_bad_space_files_name_their_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        SearchSpace.from_dict(data, name="bad")


def test_load_space_by_name_and_path(tmp_path: Path) -> None:
    by_name = load_space("merino", SPACES)
    by_path = load_space(SPACES / "merino.yaml")
    assert by_name.genes == by_path.genes and by_name.name == "merino"
    with pytest.raises(ValueError, match="^space"):
        load_space("no_such_space", SPACES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_space(bad)


def test_encode_fills_the_tail_with_first_choices() -> None:
    sp = space("lts_gpt2")
    spec = ArchSpec.from_dict(
        {
            "backbone": "gpt2",
            "n_layer": 2,
            "d_model": 256,
            "n_head": [2, 4],
            "d_inner": [512, 1024],
            "div_val": 1,
            "vocab_size": 50257,
            "max_seq_len": 192,
        }
    )
    genome = sp.encode(spec)
    assert genome["n_head[1]"] == 4 and genome["n_head[15]"] == 2 and genome["d_inner[15]"] == 128
    assert sp.decode(genome) == spec
