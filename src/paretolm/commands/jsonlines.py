"""Batch commands over JSON lines: every line gets its result or its error, in order.

A bad line does not stop the batch: its output line is ``{"line": N, "error": "..."}`` and the
command exits 1 at the end if any line failed, so thousands of specs cost one process start and a
typo on line 7 loses nothing after it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from paretolm.core.arch import ArchSpec


def each_spec(lines: Iterable[str], fn: Callable[[ArchSpec], dict[str, Any]], out: TextIO | None = None) -> int:
    """Apply ``fn`` to the spec on every non-blank line; returns how many lines failed."""
    out = out or sys.stdout  # looked up per call: tests and callers swap sys.stdout
    failed = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = fn(ArchSpec.from_json(line))
        except ValueError as e:
            failed += 1
            record = {"line": lineno, "error": str(e)}
        out.write(json.dumps(record) + "\n")
        out.flush()
    if failed:
        print(f"{failed} line(s) failed; their output lines hold the error", file=sys.stderr)
    return failed
