"""MeRino subspace entropy: fast path against Monte-Carlo SVD, composition by hand, every backbone."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from paretolm.core.arch import ArchSpec
from paretolm.core.blocks import depth
from paretolm.core.spaces import SearchSpace
from paretolm.proxies import entropy, get
from paretolm.proxies.entropy import EntropySettings, entropy_mp, entropy_svd, network_entropy

# Shapes the spaces use: d_model 64..1024 against d_model, 3-4x FFN widths, SpeedLimit's 120/128.
GRID = [
    (64, 64),
    (64, 128),
    (128, 64),
    (120, 128),
    (128, 384),
    (384, 1536),
    (512, 512),
    (512, 2048),
    (1024, 1024),
    (1024, 4096),
]


@pytest.mark.parametrize("m,n", GRID)
def test_fast_path_matches_monte_carlo_svd_within_one_percent(m: int, n: int) -> None:
    samples = 1 if m * n > 2_000_000 else 3
    for eps in (1.0, 0.5):
        fast, exact = entropy_mp(m, n, eps), entropy_svd(m, n, eps, samples=samples, seed=1)
        assert abs(fast - exact) / exact < 0.01, (m, n, eps, fast, exact)


def test_monte_carlo_svd_is_seeded_and_by_hand_for_a_diagonal_case() -> None:
    assert entropy_svd(16, 24, samples=2, seed=3) == entropy_svd(16, 24, samples=2, seed=3)
    assert entropy_svd(16, 24, samples=2, seed=3) != entropy_svd(16, 24, samples=2, seed=4)
    # A 1 x n matrix has one singular value, s^2 ~ chi^2_n: E log(1 + s^2) by quadrature.
    from scipy import integrate, stats

    n = 30
    expected = integrate.quad(lambda x: math.log1p(x) * stats.chi2.pdf(x, n), 0, np.inf)[0]
    assert entropy_svd(1, n, samples=4000, seed=0) == pytest.approx(expected, rel=0.01)


def test_entropy_is_transpose_symmetric_and_grows_with_size() -> None:
    assert entropy_mp(64, 256) == pytest.approx(entropy_mp(256, 64), rel=1e-12)
    assert entropy_mp(128, 128) > entropy_mp(64, 128) > entropy_mp(64, 64)
    assert entropy_mp(64, 64, eps=0.5) > entropy_mp(64, 64, eps=1.0)


def test_gpt2_network_entropy_by_hand() -> None:
    spec = ArchSpec(backbone="gpt2", n_layer=2, d_model=64, n_head=[2, 4], d_inner=[128, 192])
    L, beta = 2, 1 / 16
    mha = (1 - beta * L / math.log(64)) * 4 * entropy_mp(64, 64)
    ffn = sum((1 - beta * L / math.log(f)) * 2 * entropy_mp(64, f) for f in (128, 192))
    assert network_entropy(spec) == pytest.approx(0.6 * 2 * mha + 0.4 * ffn, rel=1e-12)


def test_shared_merino_block_counts_once_per_applied_layer() -> None:
    one = ArchSpec(backbone="merino", blocks=[{"d_model": 128, "ffn_ratio": 2.0, "n_layer": 1}])
    three = ArchSpec(backbone="merino", blocks=[{"d_model": 128, "ffn_ratio": 2.0, "n_layer": 3}])
    c1, c3 = entropy.components(one), entropy.components(three)
    assert c3["mha"] == pytest.approx(3 * c1["mha"])
    assert c3["ffn"] == pytest.approx(3 * c1["ffn"])
    # deeper -> stronger penalty per layer, but more entropy overall
    assert c3["mha_penalised"] < 3 * c1["mha_penalised"]
    assert network_entropy(three) > network_entropy(one)


def test_transformer_xl_counts_relative_position_projection() -> None:
    xl = ArchSpec(backbone="transformer_xl", n_layer=1, d_model=128, n_head=4, d_inner=256)
    c = entropy.components(xl)
    assert c["mha"] == pytest.approx(5 * entropy_mp(128, 128))  # q, k, v, o, r_net


def test_par_identity_sublayers_add_nothing_and_halve_depth() -> None:
    a = ArchSpec(backbone="par", layers="sf", d_model=128, n_head=4, d_inner=256)
    b = ArchSpec(backbone="par", layers="sfii", d_model=128, n_head=4, d_inner=256)
    assert network_entropy(a) == network_entropy(b)
    assert depth(a.block_view()) == 1.0
    gpt = ArchSpec(backbone="gpt2", n_layer=1, d_model=128, n_head=4, d_inner=256)
    assert network_entropy(a) == pytest.approx(network_entropy(gpt))


def test_exact_svd_route_agrees_with_fast_route_on_a_spec() -> None:
    spec = ArchSpec(backbone="bert", n_layer=2, d_model=120, n_head=4, d_inner=256)
    fast = network_entropy(spec)
    exact = network_entropy(spec, EntropySettings(method="svd", samples=2, seed=0))
    assert exact == pytest.approx(fast, rel=0.01)


@pytest.mark.parametrize(
    "space", ["gpt2_cpu_small", "lts_gpt2", "lts_transformer_xl", "merino", "opt_350m", "par", "speedlimit_bert"]
)
def test_every_backbone_scores_from_the_spec_alone(space: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import paretolm.models as models

    def no_models(*_a, **_k):
        raise AssertionError("entropy must not build a model")

    monkeypatch.setattr(models, "build_model", no_models)
    sp = SearchSpace.from_yaml(f"config/spaces/{space}.yaml")
    rng = random.Random(0)
    values = []
    while len(values) < 5:
        try:
            spec = sp.decode(sp.random_genome(rng))
        except ValueError:
            continue
        values.append(get("merino_entropy").fn(spec, seq_len=192))
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert len(set(values)) > 1


def test_higher_entropy_for_bigger_models_sign_convention() -> None:
    small = ArchSpec(backbone="gpt2", n_layer=2, d_model=128, n_head=4, d_inner=256)
    assert network_entropy(small.with_(d_model=256, d_inner=512)) > network_entropy(small)
    assert network_entropy(small.with_(n_layer=4, n_head=4, d_inner=256)) > network_entropy(small)


def test_penalty_and_settings_validation() -> None:
    assert entropy.penalty(16, 64, 1 / 16) == pytest.approx(1 - 1 / math.log(64))
    assert entropy.penalty(10_000, 64, 1 / 16) == 0.0
    with pytest.raises(ValueError, match="eps"):
        EntropySettings(eps=0)
    with pytest.raises(ValueError, match="method"):
        EntropySettings(method="lookup")
    with pytest.raises(ValueError, match="shape"):
        entropy_mp(0, 4)


def test_settings_are_passed_not_global() -> None:
    """Scoring with non-default settings changes only that scorer: no process-global state."""
    from paretolm.proxies import Scorer

    spec = ArchSpec(backbone="gpt2", n_layer=1, d_model=64, n_head=2, d_inner=128)
    default = get("merino_entropy").fn(spec)
    tuned = Scorer(["merino_entropy"], settings={"merino_entropy": {"eps": 0.5}})
    value = tuned.table([spec])["merino_entropy"].iloc[0]
    assert value == network_entropy(spec, EntropySettings(eps=0.5)) and value > default
    assert get("merino_entropy").fn(spec) == default
    assert Scorer(["merino_entropy"]).table([spec])["merino_entropy"].iloc[0] == default
    with pytest.raises(ValueError, match="proxies.settings.merino_entropy"):
        Scorer(["merino_entropy"], settings={"merino_entropy": {"epsilon": 0.5}})
    with pytest.raises(ValueError, match="proxies.settings.decoder_params"):
        Scorer(["decoder_params"], settings={"decoder_params": {"eps": 0.5}})
