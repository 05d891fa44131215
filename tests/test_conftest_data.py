"""The data switch in conftest.py: a missing data item skips, and fails under PARETOLM_REQUIRE_DATA=1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, REQUIRE_ENV, data_path, require_executable

MISSING = "no-such-item/for-the-data-switch.txt"
NO_TOOL = "paretolm-no-such-executable"


@pytest.mark.parametrize("value", ["1", "yes"])
def test_missing_data_fails_when_required(monkeypatch, value):
    monkeypatch.setenv(REQUIRE_ENV, value)
    with pytest.raises(pytest.fail.Exception) as err:
        data_path(MISSING)
    message = str(err.value)
    assert str(DATA / MISSING) in message and "PARETOLM_DATA" in message and REQUIRE_ENV in message


@pytest.mark.parametrize("value", [None, "", "0"])
def test_missing_data_skips_when_not_required(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_ENV, value)
    with pytest.raises(pytest.skip.Exception) as err:
        data_path(MISSING)
    assert str(DATA / MISSING) in str(err.value) and "PARETOLM_DATA" in str(err.value)


def test_present_item_is_returned_either_way(monkeypatch, tmp_path):
    item = tmp_path / "item.txt"
    item.write_text("x")
    for value in ("1", "0"):
        monkeypatch.setenv(REQUIRE_ENV, value)
        assert data_path(item) == item  # an absolute part replaces the data root
    assert data_path() == DATA or not DATA.exists()


def test_missing_executable_fails_when_required_and_skips_otherwise(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=NO_TOOL):
        require_executable(NO_TOOL)
    monkeypatch.delenv(REQUIRE_ENV)
    with pytest.raises(pytest.skip.Exception, match=NO_TOOL):
        require_executable(NO_TOOL)
    assert require_executable(Path(sys.executable).name)  # the interpreter's own name is on PATH


INNER = f'''
from conftest import data_path, needs_data, needs_executable

ITEM = data_path("corpora")  # import time


@needs_data("{MISSING}")
def test_marked():
    pass


@needs_executable("{NO_TOOL}")
def test_tool():
    pass


def test_body():
    data_path("{MISSING}")


def test_fixture(shared_data):
    shared_data("{MISSING}")


def test_unrelated():
    pass
'''


def _inner_pytest(tmp_path: Path, data: Path, require: str | None) -> subprocess.CompletedProcess:
    """A tiny pytest run in its own folder, with a copy of conftest.py and a data folder of its own."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -ra --strict-markers -p no:cacheprovider\n")
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE_ENV, "PYTEST_ADDOPTS")}
    env["PARETOLM_DATA"] = str(data)
    if require is not None:
        env[REQUIRE_ENV] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_in_a_pytest_run_items_skip_without_the_switch(tmp_path):
    data = tmp_path / "data"
    (data / "corpora").mkdir(parents=True)
    run = _inner_pytest(tmp_path, data, None)
    assert run.returncode == pytest.ExitCode.OK, run.stdout + run.stderr
    assert "1 passed, 4 skipped" in run.stdout, run.stdout


def test_in_a_pytest_run_items_fail_with_the_switch(tmp_path):
    data = tmp_path / "data"
    (data / "corpora").mkdir(parents=True)
    run = _inner_pytest(tmp_path, data, "1")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    # markers fail in set-up (errors), calls in the body or a fixture fail the test
    assert "2 failed, 1 passed, 2 errors" in run.stdout, run.stdout
    assert f"offline data not found: {data / MISSING}" in run.stdout
    assert f"executable not found on PATH: {NO_TOOL}" in run.stdout


def test_in_a_pytest_run_a_module_level_item_skips_or_fails_collection(tmp_path):
    data = tmp_path / "absent"
    skipped = _inner_pytest(tmp_path, data, None)
    # the whole module is skipped at collection, so no test runs at all
    assert skipped.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout and f"offline data not found: {data / 'corpora'}" in skipped.stdout
    failed = _inner_pytest(tmp_path, data, "1")
    assert failed.returncode == pytest.ExitCode.INTERRUPTED, failed.stdout + failed.stderr  # collection error
    assert "1 error" in failed.stdout and f"offline data not found: {data / 'corpora'}" in failed.stdout
    assert "PARETOLM_DATA" in failed.stdout and REQUIRE_ENV in failed.stdout
