"""``supernet_loss``: the validation loss of a candidate's sub-network in a trained weight-sharing
supernet (the two-stage option of HAT, AutoTinyBERT and SpeedLimit).

The supernet of a space is trained once (rule ``supernet``, or ``paretolm proxy supernet``) into
``<dir>/<space>``; scoring a candidate is one forward pass of its slice of the shared weights over
the supernet's fixed validation windows. Model, training and slicing: ``paretolm.supernet.sandwich``;
conventions and cost accounting: docs/proxies.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from paretolm.core.arch import ArchSpec
from paretolm.proxies import proxy

_WHERE = "proxies.settings.supernet_loss"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SupernetSettings:
    """Knobs of the supernet (config ``proxies.settings.supernet_loss``): which space it covers,
    where it lives, and how it is trained. The schema holds the defaults users see; these are the
    same for direct calls."""

    space: str | None = None  # a space file stem under spaces_dir; required when the proxy is used
    dir: str = "results/supernet"
    steps: int = 600
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 2e-3
    warmup_steps: int = 60
    random_subnets: int = 2  # sub-networks drawn per step besides the largest and the smallest
    distill: bool = False  # sub-networks learn the largest one's soft labels (KL) instead of the data
    eval_tokens: int = 4096  # first tokens of the validation split every candidate is scored on
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.space is not None and (not isinstance(self.space, str) or not _NAME.match(self.space)):
            raise ValueError(f"{_WHERE}.space: expected the name of a space file, got {self.space!r}")
        if not isinstance(self.dir, str) or not self.dir:
            raise ValueError(f"{_WHERE}.dir: expected a folder path, got {self.dir!r}")
        for name in ("steps", "batch_size", "seq_len", "eval_tokens", "threads", "checkpoint_every"):
            _integer(name, getattr(self, name), 1)
        for name in ("warmup_steps", "random_subnets", "seed"):
            _integer(name, getattr(self, name), 0)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"{_WHERE}.lr: must be a positive number, got {self.lr!r}")
        if not isinstance(self.distill, bool):
            raise ValueError(f"{_WHERE}.distill: expected true or false, got {self.distill!r}")
        if self.eval_tokens < self.seq_len:
            raise ValueError(f"{_WHERE}.eval_tokens: {self.eval_tokens} is fewer than one window of "
                             f"seq_len={self.seq_len} tokens")

    def folder(self) -> Path:
        """Where the trained supernet of ``space`` lives: ``<dir>/<space>``."""
        if self.space is None:
            raise ValueError(f"{_WHERE}.space: not set; name the search space whose supernet scores "
                             "the candidates (a file stem under spaces_dir)")
        return Path(self.dir) / self.space


def _integer(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{_WHERE}.{name}: expected an integer >= {least}, got {value!r}")


DEFAULT = SupernetSettings()


@proxy(
    "supernet_loss",
    settings=SupernetSettings,
    trained=True,
    doc="Minus the mean validation loss (nats/token) of the candidate's sub-network in a "
    "weight-sharing supernet trained once with the sandwich rule (leading slices of every weight; "
    "HAT / AutoTinyBERT). Needs the supernet folder <dir>/<space> (rule supernet). Higher = lower "
    "predicted perplexity.",
)
def supernet_loss(spec: ArchSpec, seq_len: int = 192, settings: SupernetSettings = DEFAULT) -> float:
    """Registered proxy; ``seq_len`` is unused (the supernet's validation windows fix it)."""
    from paretolm.supernet.sandwich import load

    return -load(settings.folder()).loss(spec)
