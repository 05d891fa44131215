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
