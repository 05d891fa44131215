"""Every `snakemake ...` command the documentation shows runs: each is dry-run (`-n`) in a copy of
the workflow, so a command whose arguments Snakemake reads otherwise than the docs say (such as a
target swallowed by `--configfile`) fails here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "config" / "README.md",
    *sorted((ROOT / "config" / "presets").glob("*.yaml")),
    ROOT / "workflow" / "Snakefile",
    *sorted((ROOT / "profiles").glob("*/config.yaml")),
]
COMMAND = re.compile(r"(?<![\w-])snakemake\s+(?:-[-\w]|[\w/.]+\.parquet)[^`\n#|]*")
# Commands that are not runs of a target: they need a finished run or act on the lock.
NOT_RUNS = ("--unlock", "--report", "--lint", "-n ", "...", "…")


def documented_commands() -> list[str]:
    found: dict[str, None] = {}
    for path in DOCS:
        for part in COMMAND.findall(path.read_text()):
            for cmd in part.split("&&"):
                cmd = " ".join(cmd.split())
                if cmd.startswith("snakemake") and not any(x in cmd + " " for x in NOT_RUNS):
                    found[cmd.rstrip(" .,;:)")] = None
    return list(found)


def test_the_commands_are_found() -> None:
    commands = documented_commands()
    assert "snakemake --cores all results/pareto_cpu.parquet" in commands
    assert any("--configfile config/presets/lts-gpt2.yaml" in c for c in commands)
    assert len(commands) >= 8


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    for name in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / name, root / name)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_dry_runs(command: str, checkout: Path) -> None:
    args = shlex.split(command)[1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "-n"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
