"""What reading the package costs: validating a config, listing every registry and building the
workflow's job graph (reading every stage module) import no torch, so the command line, the config
check and Snakemake's parse start quickly; the package's layers and cycles hold (import-linter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

READS = {
    "validate the shipped config": "from paretolm.config import load_config; load_config('config/config.yaml')",
    "list every registry": (
        "from paretolm.core.backbones import BACKBONES; from paretolm.proxies import PROXIES;"
        "from paretolm.search.methods import METHODS; from paretolm.hardware.runtimes import RUNTIMES;"
        "from paretolm.commands import COMMANDS;"
        "[r.names() for r in (BACKBONES, PROXIES, METHODS, RUNTIMES, COMMANDS)]"
    ),
    "read every stage module": "import paretolm.stages as s; [s.stage(n) for n in s.STAGES.names()]",
    "build the command line": "from paretolm.cli import build_parser; build_parser()",
}


@pytest.mark.parametrize("what", READS)
def test_reading_the_package_imports_no_torch(what: str) -> None:
    code = READS[what] + "; import sys; heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules);"
    code += "print(heavy); sys.exit(1 if heavy else 0)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{what} imported {out.stdout.strip()} {out.stderr[-2000:]}"


def test_the_layers_and_cycles_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken" in out.stdout
