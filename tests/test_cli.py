"""The ``paretolm`` parser is built from the ``paretolm.commands.COMMANDS`` registry."""

from __future__ import annotations

import argparse

import pytest

from paretolm import cli
from paretolm.commands import COMMANDS


def test_every_group_comes_from_the_registry() -> None:
    groups = set(cli.build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert groups == set(COMMANDS.names())
    assert {"analyze", "arch", "audit", "merino", "par", "proxy", "speedlimit"} <= groups


def test_a_registered_command_is_runnable(capsys: pytest.CaptureFixture) -> None:
    def add_toy(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser("toy", help="a toy command")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda args: print("toy " * args.n) or 0)

    COMMANDS.add("toy", add_toy)
    try:
        assert cli.main(["toy", "--n", "2"]) == 0
        assert capsys.readouterr().out.split() == ["toy", "toy"]
    finally:
        COMMANDS.remove("toy")
    with pytest.raises(SystemExit) as exc:  # gone again: argparse's own error
        cli.main(["toy"])
    assert exc.value.code == 2
    assert "invalid choice: 'toy'" in capsys.readouterr().err


def test_unknown_command_is_argparse_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "usage: paretolm" in err


def test_a_group_must_add_its_own_parser() -> None:
    COMMANDS.add("mismatch", lambda subparsers: subparsers.add_parser("other-name"))
    try:
        with pytest.raises(RuntimeError, match="mismatch"):
            cli.build_parser()
    finally:
        COMMANDS.remove("mismatch")
