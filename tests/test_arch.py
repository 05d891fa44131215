"""ArchSpec: canonical JSON, arch_id invariances, validation messages, PAR notation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretolm.core.arch import ArchSpec, spec_from_any
from paretolm.core.backbones.merino import MerinoBlock
from paretolm.core.backbones.par import compress_par, expand_par
from paretolm.core.spaces import load_space

SPACES = Path(__file__).resolve().parents[1] / "config" / "spaces"
SPACE_NAMES = sorted(p.stem for p in SPACES.glob("*.yaml"))


def merino(*blocks: dict, **kw) -> dict:
    """A merino spec dict; each block defaults to width 128, ratio 2, one layer."""
    return {"backbone": "merino", **kw, "blocks": [{"d_model": 128, "ffn_ratio": 2, "n_layer": 1, **b} for b in blocks]}


LTS_EXAMPLE = {
    "backbone": "gpt2",
    "n_layer": 3,
    "d_model": 256,
    "n_head": [2, 2, 2],
    "d_inner": [3072, 3776, 3904],
    "div_val": 1,
}


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_json_round_trip_and_stable_id_over_sampled_specs(space_name: str) -> None:
    for spec in load_space(space_name, SPACES).sample(40, seed=5):
        text = spec.to_json()
        back = ArchSpec.from_json(text)
        assert back == spec and back.to_json() == text and back.arch_id == spec.arch_id
        assert json.loads(text) == spec.to_dict()
        assert hash(back) == hash(spec)


def test_canonical_json_form() -> None:
    spec = ArchSpec.from_dict(LTS_EXAMPLE)
    data = json.loads(spec.to_json())
    assert list(data) == sorted(data)
    assert " " not in spec.to_json()
    assert data["vocab_size"] == 50257 and data["max_seq_len"] == 1024 and data["tie_weights"] is True
    assert data["cutoffs"] == [19997, 39997] and data["d_embed"] == 256
    assert len(spec.arch_id) == 16 and int(spec.arch_id, 16) >= 0
    # fields of other backbones never appear
    assert "blocks" not in data and "layers" not in data and "mem_len" not in data


def test_arch_id_ignores_key_order() -> None:
    items = list(LTS_EXAMPLE.items())
    ids = set()
    rng = random.Random(0)
    for _ in range(10):
        rng.shuffle(items)
        ids.add(ArchSpec.from_json(json.dumps(dict(items))).arch_id)
    assert len(ids) == 1


@pytest.mark.parametrize(
    "short, explicit",
    [
        (
            LTS_EXAMPLE,
            {
                **LTS_EXAMPLE,
                "vocab_size": 50257,
                "max_seq_len": 1024,
                "tie_weights": True,
                "d_embed": 256,
                "cutoffs": [19997, 39997],
            },
        ),
        ({**LTS_EXAMPLE, "n_head": 2}, LTS_EXAMPLE),  # scalar broadcast == explicit list
        (
            {"backbone": "transformer_xl", "n_layer": 2, "d_model": 512, "n_head": [2, 2], "d_inner": [1216, 1280]},
            {
                "backbone": "transformer_xl",
                "n_layer": 2,
                "d_model": 512,
                "n_head": [2, 2],
                "d_inner": [1216, 1280],
                "d_head": [256, 256],
                "mem_len": 192,
                "pre_lnorm": False,
                "div_val": 1,
            },
        ),
        (
            {"backbone": "merino", "blocks": [{"d_model": 128, "ffn_ratio": 2, "n_layer": 1}]},
            {"backbone": "merino", "d_head": 64, "blocks": [{"n_layer": 1, "ffn_ratio": 2.0, "d_model": 128}]},
        ),
        (
            {"backbone": "par", "layers": "(sfff)x2 (f)x3", "d_model": 64, "n_head": 4, "d_inner": 128},
            {"backbone": "par", "layers": "sfffsffffff", "d_model": 64, "n_head": 4, "d_inner": 128},
        ),
        (
            {"backbone": "bert", "n_layer": 2, "d_model": 120, "n_head": 4, "d_inner": 128},
            {"backbone": "bert", "n_layer": 2.0, "d_model": 120, "n_head": 4, "d_inner": 128, "tie_weights": True},
        ),
    ],
)
def test_arch_id_ignores_defaults_and_spelling(short: dict, explicit: dict) -> None:
    a, b = ArchSpec.from_dict(short), ArchSpec.from_dict(explicit)
    assert a == b and a.arch_id == b.arch_id and a.to_json() == b.to_json()


def test_arch_id_distinguishes_architectures() -> None:
    base = ArchSpec.from_dict(LTS_EXAMPLE)
    variants = [
        base.with_(d_inner=[3072, 3776, 3840]),
        base.with_(n_head=[2, 2, 4]),
        base.with_(div_val=2),
        base.with_(tie_weights=False),
        base.with_(vocab_size=50000),
        base.with_(max_seq_len=192),
    ]
    ids = {base.arch_id} | {v.arch_id for v in variants}
    assert len(ids) == len(variants) + 1


@pytest.mark.parametrize(
    "data, field",
    [
        ({"backbone": "gpt3"}, "backbone"),
        ({"n_layer": 2}, "backbone"),
        ({**LTS_EXAMPLE, "n_head": [2, 3, 2]}, r"n_head\[1\]"),
        ({**LTS_EXAMPLE, "n_head": [2, 2]}, "n_head"),
        ({**LTS_EXAMPLE, "d_inner": [3072, 0, 3904]}, r"d_inner\[1\]"),
        ({**LTS_EXAMPLE, "d_inner": [3072, 3776, "x"]}, r"d_inner\[2\]"),
        ({**LTS_EXAMPLE, "d_model": -256}, "d_model"),
        ({**LTS_EXAMPLE, "n_layer": 0}, "n_layer"),
        ({**LTS_EXAMPLE, "vocab_size": 0}, "vocab_size"),
        ({**LTS_EXAMPLE, "max_seq_len": True}, "max_seq_len"),
        ({**LTS_EXAMPLE, "tie_weights": "yes"}, "tie_weights"),
        ({**LTS_EXAMPLE, "div_val": 0}, "div_val"),
        ({**LTS_EXAMPLE, "div_val": 512}, "div_val"),
        ({**LTS_EXAMPLE, "cutoffs": [40000, 20000]}, r"cutoffs\[1\]"),
        ({**LTS_EXAMPLE, "cutoffs": [60000]}, r"cutoffs\[0\]"),
        ({**LTS_EXAMPLE, "blocks": []}, "blocks"),
        ({**LTS_EXAMPLE, "colour": "red"}, "colour"),
        (
            {"backbone": "transformer_xl", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 64, "mem_len": -1},
            "mem_len",
        ),
        (
            {"backbone": "transformer_xl", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 64, "d_head": [32, 0]},
            r"d_head\[1\]",
        ),
        ({"backbone": "opt", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 64, "div_val": 2}, "div_val"),
        (merino({"d_model": 256}, {"d_model": 128}), r"blocks\[1\]\.d_model"),
        (merino({"d_model": 100}), r"blocks\[0\]\.d_model"),
        (merino({}, {"n_layer": 0}), r"blocks\[1\]\.n_layer"),
        (merino({"ffn_ratio": -1}), r"blocks\[0\]\.ffn_ratio"),
        ({"backbone": "merino", "blocks": [{"d_model": 128, "n_layer": 1}]}, r"blocks\[0\]\.ffn_ratio"),
        (merino({"x": 1}), r"blocks\[0\]"),
        (merino({}, d_head=0), "d_head"),
        ({"backbone": "merino"}, "blocks"),
        ({"backbone": "par", "d_model": 64, "n_head": 4, "d_inner": 128}, "layers"),
        ({"backbone": "par", "layers": "sfx", "d_model": 64, "n_head": 4, "d_inner": 128}, "layers"),
        ({"backbone": "par", "layers": "(sf)x0", "d_model": 64, "n_head": 4, "d_inner": 128}, "layers"),
        ({"backbone": "par", "layers": "(sa)x2", "d_model": 64, "n_head": 4, "d_inner": 128}, "layers"),
        ({"backbone": "par", "layers": "sf", "d_model": 64, "n_head": 5, "d_inner": 128}, "n_head"),
        ({"backbone": "bert", "n_layer": 2, "d_model": 120, "n_head": [4, 4], "d_inner": 128}, "n_head"),
        ({"backbone": "bert", "n_layer": 2, "d_model": 120, "n_head": 7, "d_inner": 128}, "n_head"),
        ({"backbone": "bert", "n_layer": 2, "d_model": 120, "n_head": 4}, "d_inner"),
    ],
)
def test_invalid_specs_name_their_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        ArchSpec.from_dict(data)


def test_bad_json_and_non_objects() -> None:
    with pytest.raises(ValueError, match="^spec"):
        ArchSpec.from_json("{not json")
    with pytest.raises(ValueError, match="^spec"):
        ArchSpec.from_json("[1, 2]")
    assert spec_from_any(json.dumps(LTS_EXAMPLE)) == spec_from_any(LTS_EXAMPLE)
    spec = ArchSpec.from_dict(LTS_EXAMPLE)
    assert spec_from_any(spec) is spec


@pytest.mark.parametrize(
    "data, field",
    [
        (merino({"ffn_ratio": None}), r"blocks\[0\]\.ffn_ratio"),
        (merino({"ffn_ratio": "x"}), r"blocks\[0\]\.ffn_ratio"),
        (merino({"ffn_ratio": float("inf")}), r"blocks\[0\]\.ffn_ratio"),
        (merino({"ffn_ratio": True}), r"blocks\[0\]\.ffn_ratio"),
        (merino({"d_model": 64, "ffn_ratio": 0.001}), r"blocks\[0\]\.ffn_ratio"),  # round(0.064) == 0: no FFN
        ({**LTS_EXAMPLE, "cutoffs": 5}, "cutoffs"),
    ],
)
def test_bad_ratio_and_cutoffs_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        ArchSpec.from_dict(data)


def test_spec_views_and_immutability() -> None:
    spec = ArchSpec.from_dict(
        {
            "backbone": "merino",
            "blocks": [
                {"d_model": 128, "ffn_ratio": 1.5, "n_layer": 2},
                {"d_model": 256, "ffn_ratio": 2.5, "n_layer": 3},
            ],
        }
    )
    assert spec.num_layers == 5
    assert spec.blocks[0] == MerinoBlock(128, 1.5, 2) and spec.blocks[1].d_inner == 640
    with pytest.raises(AttributeError):
        spec.d_head = 32  # type: ignore[misc]
    par = ArchSpec(backbone="par", layers="(sfi)x2", d_model=64, n_head=4, d_inner=64)
    assert par.layers == "sfisfi" and par.num_layers == 4
    assert [(b.attention is not None, b.ffn is not None) for b in par.block_view()] == [
        (True, False),
        (False, True),
    ] * 2
    with pytest.raises(AttributeError, match="layers"):
        spec.layers  # noqa: B018  (merino has no PAR layer string)
    with pytest.raises(ValueError, match=r"^n_head\[0\]"):
        ArchSpec.from_dict(LTS_EXAMPLE).with_(d_model=255)


@pytest.mark.parametrize(
    "text, expanded",
    [
        ("(sfff)x6 (f)x8", "sfff" * 6 + "f" * 8),
        ("sfsf", "sfsf"),
        ("(sf) x 2 i", "sfsfi"),
        ("(s)x2(f)x3", "ssfff"),
        ("  (sfi)  ", "sfi"),
    ],
)
def test_expand_par(text: str, expanded: str) -> None:
    assert expand_par(text) == expanded


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="sfi", min_size=1, max_size=40))
def test_compress_par_round_trips(layers: str) -> None:
    short = compress_par(layers)
    assert expand_par(short) == layers
    assert len(short) <= len(layers)


def test_compress_par_examples() -> None:
    assert compress_par("sfff" * 6 + "f" * 8) == "(sfff)x6 (f)x8"
    assert compress_par("sf") == "sf"
