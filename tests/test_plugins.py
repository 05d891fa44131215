"""Adding a plugin is one file: a toy backbone, a toy proxy with settings, a toy search method with
settings and a toy runtime, each written to a file of its own as a user would write it, are
validated in a config, listed and run through the same registry-wide checks as the built-in
ones, with no other edit to paretolm or to its tests."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pandas as pd
import pytest
import torch
from conftest import check_runtime, runtime_cases

from paretolm.config import load_config, load_schema
from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.core.counting import count
from paretolm.core.spaces import SearchSpace
from paretolm.hardware.runtimes import RUNTIMES
from paretolm.models import build_model
from paretolm.proxies import PROXIES, Scorer
from paretolm.search.driver import search
from paretolm.search.methods import METHODS, SearchProblem, measure_each

TOY_BACKBONE = '''
"""A toy backbone: residual feed-forward layers, no attention."""
import torch.nn as nn

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Block, FeedForward
from paretolm.core.counting import stack, totals
from paretolm.core.genes import per_layer, positive


class ToyFFN(nn.Module):
    role = "ffn"

    def __init__(self, d, f):
        super().__init__()
        self.up, self.down = nn.Linear(d, f), nn.Linear(f, d)

    def forward(self, x):
        return x + self.down(self.up(x).relu())


class ToyLM(nn.Module):
    embedding_module, head_module = "wte", "head"

    def __init__(self, spec):
        super().__init__()
        self.wte = nn.Embedding(spec.vocab_size, spec.d_model)
        self.layers = nn.Sequential(*(ToyFFN(spec.d_model, f) for f in spec.d_inner))
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)

    def forward(self, input_ids, labels=None):
        from paretolm.models.layers import LMOutput, next_token_loss

        logits = self.head(self.layers(self.wte(input_ids)))
        return LMOutput(logits, None if labels is None else next_token_loss(logits, labels))


class Toy(Backbone):
    name = "toy_mlp"
    genes = ("n_layer", "d_model", "d_inner")
    example = {"backbone": "toy_mlp", "n_layer": 2, "d_model": 16, "d_inner": [24, 32], "vocab_size": 50}

    def normalise(self, genes, common):
        n = positive(genes, "n_layer", self.name)
        return {"n_layer": n, "d_model": positive(genes, "d_model", self.name),
                "d_inner": per_layer(genes.get("d_inner"), n, "d_inner")}

    def blocks(self, spec):
        return [Block(spec.d_model, ffn=FeedForward(f, "relu")) for f in spec.d_inner]

    def build(self, spec, dropout=0.0, attn_dropout=0.0):
        return ToyLM(spec)

    def breakdown(self, spec, seq_len):
        parts = stack(self.blocks(spec), seq_len)
        parts["norm_params"] = 0  # the toy's layers have no norm
        d, v = spec.d_model, spec.vocab_size
        return totals(parts, embedding=2 * v * d, embed_head_flops=2 * seq_len * d * v)


BACKBONES.add("toy_mlp", Toy())
'''

TOY_PROXY = '''
"""A toy proxy with one setting."""
from dataclasses import dataclass

from paretolm.core.settings import check, setting
from paretolm.proxies import proxy


@dataclass(frozen=True)
class WidthSettings:
    power: float = setting(1.0, exclusive_minimum=0, maximum=4, doc="The exponent of each width.")

    def __post_init__(self):
        check(self, "proxies.settings.toy_width")


@proxy("toy_width", settings=WidthSettings, doc="sum of FFN widths ** power (higher = better).")
def toy_width(spec, seq_len=192, settings=WidthSettings()):
    return float(sum(b.ffn.d_inner ** settings.power for b in spec.block_view()))
'''


TOY_METHOD = '''
"""A toy search method with settings: the best of a few random draws, every one measured."""
import random
from dataclasses import dataclass

import pandas as pd

from paretolm.core.settings import check, setting
from paretolm.search.methods import METHODS, Method, MethodSettings, SearchResult


@dataclass(frozen=True)
class DrawSettings(MethodSettings):
    draws: int = setting(12, minimum=1, maximum=1000, doc="Random architectures drawn and measured.")

    def __post_init__(self):
        check(self, "search.toy_draws")


class Draws(Method):
    settings = DrawSettings
    test_settings = {"draws": 9}

    def run(self, problem):
        rng = random.Random(problem.seed)
        specs = list({s.arch_id: s for s in (problem.space.sample_genome(rng)[1]
                                              for _ in range(problem.options.draws))}.values())
        scores = problem.score(specs)
        hardware = pd.DataFrame(problem.hardware(specs))
        archive = pd.concat([scores, hardware.drop(columns=[c for c in hardware if c in scores])], axis=1)
        archive.insert(1, "spec", [s.to_json() for s in specs])
        return SearchResult(archive, archive.iloc[0:0], problem.objectives)


METHODS.add("toy_draws", Draws())
'''

TOY_RUNTIME = '''
"""A toy runtime: the eager model behind a session of its own."""
from paretolm.hardware.runtimes import RUNTIMES, Runtime
from paretolm.hardware.runtimes.pytorch import TorchSession


class Eager(Runtime):
    name = "toy_eager"
    devices = ("cpu",)
    dtypes = ("float32",)

    def load(self, model, settings):
        return TorchSession(model, self.name)


RUNTIMES.add("toy_eager", Eager())
'''

FILES = {"toy_backbone": TOY_BACKBONE, "toy_proxy": TOY_PROXY, "toy_method": TOY_METHOD, "toy_runtime": TOY_RUNTIME}


@pytest.fixture
def toy_plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    for module, text in FILES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(text))
        importlib.import_module(module)
    yield
    BACKBONES.remove("toy_mlp")
    PROXIES.remove("toy_width")
    METHODS.remove("toy_draws")
    RUNTIMES.remove("toy_eager")
    for module in FILES:
        sys.modules.pop(module, None)


def test_a_toy_backbone_and_proxy_count_build_score_and_search(toy_plugins) -> None:
    spec = ArchSpec("toy_mlp", n_layer=2, d_model=16, d_inner=[24, 32], vocab_size=50, max_seq_len=32)
    model = build_model(spec)
    assert count(spec).total_params == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 50, (2, 8))
    assert model(ids, labels=ids).loss.item() > 0

    scorer = Scorer(
        ["toy_width", "decoder_params", "merino_entropy", "grad_norm"],
        seq_len=8,
        batch=ids,
        settings={"toy_width": {"power": 2.0}},
    )
    row = scorer.table([spec]).iloc[0]
    assert row["toy_width"] == 24.0**2 + 32.0**2
    assert row["decoder_params"] == count(spec).decoder_params
    assert row["merino_entropy"] > 0 and row["grad_norm"] > 0  # FFN-only layers: entropy and gradients

    space = SearchSpace.from_dict(
        {
            "backbone": "toy_mlp",
            "fixed": {"vocab_size": 50, "max_seq_len": 32},
            "genes": {
                "n_layer": {"min": 1, "max": 3},
                "d_model": [8, 16],
                "d_inner": {"choices": [8, 16, 32], "per": "layer"},
            },
        },
        name="toy",
    )
    settings = {
        "method": "lts",
        "seed": 0,
        "measure": "all",
        "lts": {
            "iterations": 2,
            "population": 6,
            "parents": 3,
            "mutations": 3,
            "mutation_prob": 0.5,
            "crossovers": 3,
            "max_attempts": 20,
        },
        "objectives": {"proxy": "toy_width", "latency": True, "memory": False},
        "bounds": {"params": {"column": "decoder_params", "min": None, "max": None}, "latency_ms_max": None},
    }

    def measure(s: ArchSpec) -> dict:  # a stand-in device: latency grows with the FLOPs
        return {"latency_ms": count(s, 8).flops / 1e4, "peak_memory_mb": 1.0}

    result = search(
        SearchProblem(
            space=space,
            settings=settings,
            hardware=measure_each(measure),
            scorer=Scorer(["toy_width", "decoder_params"]),
            initial=None,
        ),
        measure,
    )
    archive, front = result.archive, result.frontier
    assert len(archive) >= 6 and set(archive["iteration"]) == {0, 1, 2}
    assert all(ArchSpec.from_json(s).backbone == "toy_mlp" for s in archive["spec"])
    assert len(front) >= 1 and archive.loc[archive["on_front"], "arch_id"].tolist() == front["arch_id"].tolist()
    assert isinstance(archive, pd.DataFrame) and {"toy_width", "latency_ms"} <= set(front.columns)


def test_toy_plugins_are_listed_and_their_settings_validated(toy_plugins) -> None:
    assert "toy_draws" in METHODS.names() and "toy_eager" in RUNTIMES.names() and "toy_width" in PROXIES.names()
    schema = load_schema()["properties"]
    assert schema["search"]["properties"]["toy_draws"]["properties"]["draws"]["default"] == 12
    assert "toy_eager" in schema["hardware"]["additionalProperties"]["properties"]["runtime"]["enum"]
    config = load_config(
        overrides={
            "search": {"method": "toy_draws", "toy_draws": {"draws": 5}},
            "hardware": {"toy": {"device": "cpu", "runtime": "toy_eager"}},
            "proxies": {"names": ["decoder_params", "toy_width"], "settings": {"toy_width": {"power": 2.0}}},
        }
    )
    assert config["search"]["toy_draws"] == {"space": None, "draws": 5}
    for over, message in (
        ({"search": {"toy_draws": {"draws": 0}}}, r"search\.toy_draws\.draws: 0 is less than the minimum of 1"),
        ({"search": {"toy_draws": {"drawz": 3}}}, r"search\.toy_draws\.drawz: unknown key \(did you mean 'draws'"),
        ({"hardware": {"toy": {"device": "cpu", "runtime": "toy_eagr"}}}, r"hardware\.toy\.runtime: expected one of"),
        ({"proxies": {"settings": {"toy_width": {"power": 9}}}}, r"proxies\.settings\.toy_width\.power: 9 is greater"),
    ):
        with pytest.raises(ValueError, match=message):
            load_config(overrides=over)


def test_a_toy_method_runs_through_the_registry_wide_checks(toy_plugins) -> None:
    from test_methods import check_common_tables, run

    result, device = run("toy_draws")
    check_common_tables(result, device)
    assert len(result.archive) <= 9 and result.archive["measured"].all()


def test_a_toy_runtime_runs_through_the_registry_wide_checks(toy_plugins) -> None:
    assert ("toy_eager", "float32", "gpt2") in runtime_cases()
    measured = check_runtime("toy_eager", "float32", ArchSpec.from_dict(BACKBONES.get("gpt2").example))
    assert measured["runtime"] == "toy_eager"


def test_plugins_are_gone_after_the_test() -> None:
    assert "toy_mlp" not in BACKBONES and "toy_width" not in PROXIES
    assert "toy_draws" not in METHODS and "toy_eager" not in RUNTIMES
