"""The ``paretolm`` command line: one sub-command group per entry of ``paretolm.commands.COMMANDS``.

Each entry adds its group's parser to the sub-parsers and sets ``func`` on it; errors that users
can fix are raised as ``ValueError`` and printed to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from paretolm import __version__
from paretolm.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretolm", description="Hardware-aware, training-free architecture search for Transformer LMs."
    )
    parser.add_argument("--version", action="version", version=f"paretolm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add_group in COMMANDS.items():
        add_group(sub)
        if name not in sub.choices:
            raise RuntimeError(f"command {name!r}: its registered function added no {name!r} parser")
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
