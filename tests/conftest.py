"""Where the tests find the offline data, and what a test does when something it needs is missing.

The data folder is ``$PARETOLM_DATA`` or, when that is unset, ``../shared/data`` next to the
repository root (see its README.md); it is resolved once, here. A test that needs an item of it, or
an executable such as ``snakemake``, skips when it is missing, unless ``PARETOLM_REQUIRE_DATA=1``:
then it fails with a message naming the missing path, so a run that is meant to have the data (CI)
cannot pass by skipping.

In a test module::

    from conftest import DATA, data_path, needs_data, needs_executable

    KJV = DATA / "corpora/kjv/kjv_verses.txt"     # a plain path at import time, checked by a marker:
    pytestmark = needs_data(KJV)                   # before each test of the module, or

    @needs_data("ground-truth/hat-latency")        # before this test (relative to DATA, or absolute)
    def test_hat(): ...

    def test_text():                               # in a test body or fixture: skips (fails) that test
        text = data_path("corpora/tinyshakespeare/input.txt").read_text()

    def test_tokens(shared_data):                  # the same function as a fixture
        vocab = shared_data("tokenizers/gpt2/vocab.json")

``data_path`` also works at a module's top level, where a missing item skips the whole module (or,
under the switch, is a collection error); a marker keeps each test reported as skipped instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

DATA_ENV = "PARETOLM_DATA"
REQUIRE_ENV = "PARETOLM_REQUIRE_DATA"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _resolve_data_root() -> Path:
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(os.path.abspath(env))
    return REPO_ROOT.parent / "shared" / "data"


DATA: Path = _resolve_data_root()


def data_required() -> bool:
    """True when ``PARETOLM_REQUIRE_DATA`` is set to anything but empty, ``0``, ``false`` or ``no``."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _missing(what: str, hint: str) -> NoReturn:
    if data_required():
        pytest.fail(f"{what}; {hint} ({REQUIRE_ENV}=1 is set, so this is a failure, not a skip)", pytrace=False)
    # allowed at module level too: a module-level call skips the whole module
    pytest.skip(f"{what}; {hint}", allow_module_level=True)


def data_path(*parts: str | os.PathLike) -> Path:
    """``DATA`` joined with ``parts`` (``"corpora/kjv/kjv_verses.txt"`` or separate components),
    checked to exist: a missing item skips, or fails under ``PARETOLM_REQUIRE_DATA=1``.

    Called at a module's top level it skips (fails at collection) the whole module; in a test or
    fixture, only the tests that use it. With no ``parts`` it checks the data folder itself."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        _missing(
            f"offline data not found: {path}",
            f"set {DATA_ENV} to the folder holding it (default: <repo>/../shared/data)",
        )
    return path


def require_executable(name: str) -> str:
    """The full path of executable ``name`` on PATH; when absent, skips, or fails under the switch."""
    found = shutil.which(name)
    if found is None:
        _missing(
            f"executable not found on PATH: {name}",
            "install the package (pip install -e '.[dev]') in the active environment or add it to PATH",
        )
    return found


def needs_data(*parts: str | os.PathLike) -> pytest.MarkDecorator:
    """Marker: before the test runs (and before its fixtures), every item (a path relative to
    ``DATA``, or an absolute one) goes through ``data_path``. Decorate a test, or use as
    ``pytestmark``. No items: the data folder itself."""
    return pytest.mark.needs_data(*parts)


def needs_executable(*names: str) -> pytest.MarkDecorator:
    """Marker: before the test runs, every executable goes through ``require_executable``."""
    return pytest.mark.needs_executable(*names)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_data(*paths): skip (fail under PARETOLM_REQUIRE_DATA=1) "
        "when an item of the offline data folder is missing",
    )
    config.addinivalue_line(
        "markers",
        "needs_executable(*names): skip (fail under PARETOLM_REQUIRE_DATA=1) when an executable is not on PATH",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture is set up, so a module-scoped fixture never reads missing data
    for mark in item.iter_markers("needs_data"):
        for part in mark.args or ("",):
            data_path(part)
    for mark in item.iter_markers("needs_executable"):
        for name in mark.args:
            require_executable(name)


@pytest.fixture
def shared_data() -> Callable[..., Path]:
    """``data_path`` as a fixture: ``shared_data("tokenizers/gpt2")``."""
    return data_path


# -- runtimes: what every registered runtime must do, on every backbone it supports ----------------
RUNTIME_PROFILE = dict(seq_len=24, decode_tokens=4, warmup=1, min_repeats=10, max_repeats=10, rel_iqr_max=1.0)


def runtime_cases() -> list[tuple[str, str, str]]:
    """(runtime, dtype, backbone) for every registered runtime that runs on this machine's CPU:
    every registered backbone it supports in its first dtype, and its other dtypes on the first of
    them (a dtype is the runtime's business, not the backbone's; some runtimes take tens of seconds
    to lower a model). A runtime whose check fails here is not skipped: its cases fail, naming
    what is missing."""
    from paretolm.core.arch import ArchSpec
    from paretolm.core.backbones import BACKBONES
    from paretolm.hardware.runtimes import RUNTIMES

    cases = []
    for name, runtime in RUNTIMES.items():
        if "cpu" not in runtime.devices:
            continue
        backbones = [b for b, p in BACKBONES.items() if runtime.supports(ArchSpec.from_dict(p.example)) is None]
        cases += [(name, runtime.dtypes[0], b) for b in backbones]
        cases += [(name, dtype, backbones[0]) for dtype in runtime.dtypes[1:] if backbones]
    return cases


def check_runtime(runtime: str, dtype: str, spec) -> dict:
    """Load ``spec``'s model through the runtime (which checks its logits against PyTorch's before
    it is timed), compare a prefill on another batch and length and, for causal backbones, cached
    decoding steps with the eager model within the runtime's tolerance, then measure it; returns
    the measurement."""
    import numpy as np
    import torch

    from paretolm.hardware import profiling
    from paretolm.hardware.runtimes import RUNTIMES, relative_error
    from paretolm.hardware.settings import Settings

    settings = Settings(runtime=runtime, dtype=dtype, **RUNTIME_PROFILE)
    tolerance = RUNTIMES.get(runtime).tolerance[dtype]
    session = profiling.prepare_model(spec, settings)
    torch.manual_seed(0)
    model = spec.plugin.build(spec).eval()
    ids = torch.randint(0, spec.vocab_size, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        want = model(ids).logits.float().numpy()
    got = session.logits(session(session.inputs(ids)))
    assert got.shape == want.shape and relative_error(got, want) <= tolerance, relative_error(got, want)
    if spec.plugin.causal:
        logits, past = session.step(session.inputs(ids[:, :7]), None)
        parts = [session.logits(logits)]
        for i in range(7, 10):
            logits, past = session.step(session.inputs(ids[:, i : i + 1]), past)
            parts.append(session.logits(logits))
        assert relative_error(np.concatenate(parts, axis=1), want) <= tolerance
    measured = profiling.measure(spec, settings)
    assert measured["runtime"] == runtime and measured["dtype"] == dtype
    assert measured["prefill_ms"] > 0 and measured["peak_memory_mb"] > 0
    if spec.plugin.causal:
        assert measured["decode_ms_per_token"] > 0 and measured["decode_repeats"] == 10
    return measured


# -- the tiny search spaces the tests search, train and run workflows on ----------------------------
_TINY_GENES = {
    "n_layer": {"min": 1, "max": 3},
    "d_model": {"min": 32, "max": 96, "step": 32},
    "n_head": {"choices": [1, 2, 4], "per": "layer"},
    "d_inner": {"min": 64, "max": 256, "step": 64, "per": "layer"},
}
TINY_SPACES: dict[str, dict] = {
    "gpt2": {"backbone": "gpt2", "fixed": {"vocab_size": 512, "max_seq_len": 32}, "genes": _TINY_GENES},
    "opt": {"backbone": "opt", "fixed": {"vocab_size": 512, "max_seq_len": 32}, "genes": _TINY_GENES},
    "transformer_xl": {
        "backbone": "transformer_xl",
        "fixed": {"vocab_size": 512, "max_seq_len": 32, "div_val": 1, "mem_len": 0},
        "genes": {**_TINY_GENES, "d_head": {"choices": [8, 16], "per": "layer"}},
    },
    "merino": {
        "backbone": "merino",
        "fixed": {"vocab_size": 512, "max_seq_len": 64, "n_block": 2, "d_head": 16},
        "genes": {
            "d_model": {"choices": [16, 32, 48, 64], "per": "block"},
            "ffn_ratio": {"choices": [1.0, 2.0, 3.0], "per": "block"},
            "n_layer": {"min": 1, "max": 3, "per": "block"},
        },
    },
    "par": {
        "backbone": "par",
        "fixed": {"vocab_size": 320, "max_seq_len": 32, "n_sublayer": 4, "d_model": 16, "n_head": 2, "d_inner": 32},
        "genes": {"layers": {"choices": ["s", "f", "i"], "per": "sublayer"}},
    },
}


def tiny_space(backbone: str = "gpt2", name: str | None = None):
    """The tiny ``SearchSpace`` of ``backbone`` (``TINY_SPACES``), named ``name`` (default: ``tiny``
    for gpt2, ``tiny_<backbone>`` for the others, as the workflow tests write them to files)."""
    from paretolm.core.spaces import SearchSpace

    return SearchSpace.from_dict(TINY_SPACES[backbone], name=name or tiny_name(backbone))


def tiny_name(backbone: str) -> str:
    return "tiny" if backbone == "gpt2" else f"tiny_{backbone}"
