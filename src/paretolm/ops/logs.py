"""Where a stage's output goes: ``logged`` sends everything a job prints to its log file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def logged(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send the ``paretolm`` logger, warnings and the process's stdout/stderr (file descriptors 1
    and 2, so output of C++ libraries such as the profiler lands there too) to ``path`` for the
    duration of a stage; an exception is logged with its traceback before it propagates."""
    log = logging.getLogger("paretolm")
    if path is None:
        yield log
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "w", buffering=1)  # noqa: SIM115  (closed in finally)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    try:
        yield log
    except BaseException:
        log.exception("stage failed")
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        log.removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        log.setLevel(old_level)
        stream.close()
