"""Bad architecture specs and search-space files get a named error before any work."""

from __future__ import annotations

import pytest

from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import SearchSpace

GPT2 = {"backbone": "gpt2", "n_layer": 2, "d_model": 64, "n_head": 2, "d_inner": 64}


@pytest.mark.parametrize(
    "data, message",
    [
        ({**GPT2, "n_layer": 10**9}, r"^n_layer: 1000000000 is above the limit"),
        ({**GPT2, "d_inner": [64, 10**9]}, r"^d_inner\[1\]: .* above the limit"),
        ({**GPT2, "vocab_size": 10**12}, r"^vocab_size: .* above the limit"),
        ({**GPT2, "n_layer": True}, r"^n_layer: expected an integer, got True"),
        (
            {"backbone": "transformer_xl", **{k: v for k, v in GPT2.items() if k != "backbone"}, "mem_len": True},
            r"^mem_len: must be a non-negative integer",
        ),
        (
            {"backbone": "transformer_xl", **{k: v for k, v in GPT2.items() if k != "backbone"}, "mem_len": 10**9},
            r"^mem_len: .* above the limit",
        ),
        (
            {"backbone": "par", "layers": "(sf)x1000000000", "d_model": 64, "n_head": 2, "d_inner": 64},
            r"^layers: .* more than 4096 sub-layers",
        ),
        ({"backbone": "merino", "blocks": 5}, r"^blocks: MeRino backbone needs a list"),
        (
            {"backbone": "merino", "blocks": [{"d_model": 64, "ffn_ratio": 2, "n_layer": 10**6}]},
            r"^blocks\[0\]\.n_layer: .* above the limit",
        ),
        ({"backbone": "merino", "blocks": [None]}, r"^blocks\[0\]: expected a mapping"),
        ({"backbone": None}, r"^backbone"),
        ({"backbone": ["gpt2"]}, r"^backbone"),
    ],
)
def test_malformed_specs_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchSpec.from_dict(data)


def test_booleans_are_not_integers_and_ids_stay_distinct() -> None:
    base = {**GPT2, "backbone": "transformer_xl"}
    assert ArchSpec.from_dict({**base, "mem_len": 1}).mem_len == 1
    with pytest.raises(ValueError, match="^mem_len"):
        ArchSpec.from_dict({**base, "mem_len": True})


SPACE = {
    "backbone": "gpt2",
    "fixed": {"vocab_size": 1000},
    "genes": {
        "n_layer": {"min": 1, "max": 2},
        "d_model": [64],
        "n_head": [2],
        "d_inner": {"choices": [64, 128], "per": "layer"},
    },
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"constraint": {"homogeneous": True}}, r"^constraint: unknown key in a search space"),
        (
            {"genes": {**SPACE["genes"], "d_model": {"min": 64, "max": 128, "stpe": 64}}},
            r"^genes\.d_model\.stpe: unknown key",
        ),
        ({"genes": {**SPACE["genes"], "d_modle": [64]}}, r"^genes\.d_modle: not a gene of backbone 'gpt2'"),
        ({"fixed": {"vocab_sise": 1000}}, r"^fixed\.vocab_sise: not a gene"),
        ({"backbone": "gpt3"}, r"^backbone: unknown backbone 'gpt3' \(known: "),
        ({"genes": {**SPACE["genes"], "d_model": {"min": 1, "max": 10**9}}}, r"^genes\.d_model: .* choices; at most"),
        ({"genes": {**SPACE["genes"], "d_model": {"min": "a", "max": 2}}}, r"^genes\.d_model\.min: expected a number"),
        ({"genes": []}, r"^genes: expected a mapping"),
        ({"fixed": [1]}, r"^fixed: expected a mapping"),
    ],
)
def test_bad_space_definitions_name_the_real_cause(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_dict({**SPACE, **change}, name="bad")


def test_space_file_errors_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(
        "backbone: gpt2\nfixed: {vocab_size: 1000}\ngenes:\n  n_layer: {min: 1, max: 2}\n"
        "  d_model: {min: 64, max: 128, stpe: 64}\n  n_head: [2]\n  d_inner: [64]\n"
    )
    with pytest.raises(ValueError, match=rf"^{path}:5: genes\.d_model\.stpe: unknown key"):
        SearchSpace.from_yaml(path)
    path.write_text("backbone: gpt2\ngenes: {n_layer: [1]\n")
    with pytest.raises(ValueError, match=rf"^{path}:\d+:\d+: YAML syntax error"):
        SearchSpace.from_yaml(path)


def test_impossible_space_says_why_draws_fail() -> None:
    space = SearchSpace.from_dict({**SPACE, "genes": {**SPACE["genes"], "n_head": [3], "d_model": [64]}}, name="heads")
    space.max_tries = 20
    with pytest.raises(ValueError, match=r"rejected because n_head\[0\]: 3 heads do not divide d_model=64"):
        space.sample(1, seed=0)
