"""``supernet_loss``: the validation loss of a candidate's sub-network in a trained weight-sharing
supernet (the two-stage option of HAT, AutoTinyBERT and SpeedLimit).

The supernet of a space is trained once (rule ``supernet``, or ``paretolm proxy supernet``) into
``<dir>/<space>``, the proxy's ``artifact``; scoring a candidate is one forward pass of its slice of
the shared weights over the supernet's fixed validation windows. Model, training and slicing:
``paretolm.supernet``; conventions and cost accounting: docs/proxies.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import get as get_backbone
from paretolm.core.settings import check, setting
from paretolm.proxies.base import proxy

WHERE = "proxies.settings.supernet_loss"
META = "supernet.json"  # the record paretolm.supernet writes beside the weights
supernet = lazy.module("paretolm.supernet")  # torch: imported when a candidate is scored


@dataclass(frozen=True)
class SupernetSettings:
    """Settings of the supernet_loss proxy: the space whose weight-sharing supernet scores the
    candidates (rule supernet trains it into dir/space on the train dataset), and its sandwich-rule
    training."""

    space: str | None = setting(
        None,
        pattern="^[A-Za-z0-9_.-]+$",
        doc="Space file stem under spaces_dir; required when supernet_loss is scored.",
    )
    dir: str = setting("results/supernet", min_length=1)
    steps: int = setting(600, minimum=1, maximum=100_000_000)
    batch_size: int = setting(8, minimum=1, maximum=65536)
    seq_len: int = setting(128, minimum=2, maximum=1048576)
    lr: float = setting(2e-3, exclusive_minimum=0, maximum=10)
    warmup_steps: int = setting(60, minimum=0, maximum=100_000_000)
    random_subnets: int = setting(
        2, minimum=0, maximum=1000, doc="Random sub-networks per step besides the largest and the smallest."
    )
    distill: bool = setting(False, doc="Sub-networks learn the largest one's soft labels (KL) instead of the data.")
    eval_tokens: int = setting(
        4096, minimum=2, maximum=1_000_000_000, doc="First validation tokens every candidate is scored on."
    )
    seed: int = setting(0, minimum=0, maximum=4294967295)
    threads: int = setting(1, minimum=1, maximum=1024)
    checkpoint_every: int = setting(100, minimum=1, maximum=1_000_000_000)

    def __post_init__(self) -> None:
        check(self, WHERE)
        if self.eval_tokens < self.seq_len:
            raise ValueError(
                f"{WHERE}.eval_tokens: {self.eval_tokens} is fewer than one window of seq_len={self.seq_len} tokens"
            )

    def folder(self) -> Path:
        """Where the trained supernet of ``space`` lives: ``<dir>/<space>``."""
        if self.space is None:
            raise ValueError(
                f"{WHERE}.space: not set; name the search space whose supernet scores "
                "the candidates (a file stem under spaces_dir)"
            )
        return Path(self.dir) / self.space


DEFAULT = SupernetSettings()


def needs(config: Mapping[str, Any], settings: SupernetSettings) -> None:
    """A space whose backbone can be sliced, and the train dataset and tokenizer it is trained on."""
    if settings.space is None:
        settings.folder()  # raises naming the key
    path = Path(config["spaces_dir"]) / f"{settings.space}.yaml"
    if not path.exists():
        raise ValueError(f"{WHERE}.space: no search space file {str(path)!r} (spaces_dir={config['spaces_dir']!r})")
    backbone = (yaml.safe_load(path.read_text()) or {}).get("backbone")
    if backbone is None or not get_backbone(backbone).sliceable:
        raise ValueError(
            f"{WHERE}.space: the supernet slices causal backbones whose genes are sizes; "
            f"space {settings.space!r} is a {backbone} space"
        )
    for key in ("dataset", "tokenizer"):
        if config["train"][key] is None:
            raise ValueError(f"train.{key}: not set; supernet_loss trains its supernet on the train {key}")


def train_seconds(settings: SupernetSettings) -> float:
    """The supernet's training time, recorded in its folder."""
    return float(json.loads((settings.folder() / META).read_text())["train_seconds"])


@proxy(
    "supernet_loss",
    settings=SupernetSettings,
    trained=True,
    artifact=SupernetSettings.folder,
    setup_seconds=train_seconds,
    check=needs,
    doc="Minus the mean validation loss (nats/token) of the candidate's sub-network in a "
    "weight-sharing supernet trained once with the sandwich rule (leading slices of every weight; "
    "HAT / AutoTinyBERT). Needs the supernet folder <dir>/<space> (rule supernet). Higher = lower "
    "predicted perplexity.",
)
def supernet_loss(spec: ArchSpec, seq_len: int = 192, settings: SupernetSettings = DEFAULT) -> float:
    """Registered proxy; ``seq_len`` is unused (the supernet's validation windows fix it)."""
    return -supernet.load(settings.folder()).loss(spec)
