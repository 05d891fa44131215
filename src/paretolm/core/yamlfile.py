"""Reading user YAML files with errors that name the file and the line.

``load`` turns a syntax error into ``ValueError("<file>:<line>:<column>: ...")``; ``where`` gives
``<file>:<line>`` of a key path (``["genes", "d_model", "stpe"]``) so a validation error can point
at the line to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def load(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file; ValueError naming the file and line for a syntax error or a
    file that cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ValueError(f"{path}{at}: YAML syntax error: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: YAML error: {e}") from None


def line_of(path: str | Path, keys: Sequence[str | int], exact: bool = False) -> int | None:
    """1-based line of the deepest key of ``keys`` that exists in the file (None if none does;
    with ``exact``, None unless the whole path exists)."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if found is None:
                return None if exact else line
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return None if exact else line
    return line


def where(path: str | Path, keys: Sequence[str | int]) -> str:
    """``<file>:<line>`` of ``keys`` in the file, or just ``<file>``."""
    line = line_of(path, keys)
    return f"{path}:{line}" if line else str(path)
