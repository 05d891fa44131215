"""Sub-command groups of the ``paretolm`` CLI, one module each, registered in ``COMMANDS``.

A group module registers a function that adds the group's parser (named like the entry) to the
top-level sub-parsers and sets ``func`` on each of its leaves::

    @COMMANDS.register("arch")
    def register(subparsers: argparse._SubParsersAction) -> None: ...

``paretolm.cli`` builds its parser from ``COMMANDS.items()``; every module of this package is
imported the first time the registry is asked for its entries, so adding a group is adding a file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from paretolm.core.registry import Registry

AddGroup = Callable[[argparse._SubParsersAction], None]  # noqa: SLF001 (argparse names it so)

COMMANDS: Registry[AddGroup] = Registry("command", package=__name__)

__all__ = ["COMMANDS", "AddGroup"]
