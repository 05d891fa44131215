"""The ``paretolm`` command line: one sub-command group per module in ``paretolm.commands``.

Each group module exposes ``register(subparsers)``, adding its parser and setting ``func`` on it;
errors that users can fix are raised as ``ValueError`` and printed to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretolm", description="Hardware-aware, training-free architecture search for Transformer LMs."
    )
    parser.add_argument("--version", action="version", version=f"paretolm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"paretolm: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
