"""A weight-sharing supernet over a search space and the ``supernet_loss`` proxy's scoring with it.

``weights``: the shared tensors and how a candidate's model reads its slices of them; ``train``: the
sandwich-rule training on the one training loop; here: reading a trained supernet folder back
(``load``) and scoring a candidate (``TrainedSupernet.loss``). Derivations and cost accounting:
docs/proxies.md ("supernet_loss").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model

from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import SearchSpace
from paretolm.proxies.supernet_loss import META
from paretolm.supernet.train import WEIGHTS, WINDOWS, train_supernet
from paretolm.supernet.weights import Supernet, extreme


@dataclass
class TrainedSupernet:
    """A trained supernet folder, read back: the weights, their record and the validation windows."""

    net: Supernet
    meta: dict[str, Any]
    windows: torch.Tensor

    @torch.no_grad()
    def loss(self, spec: ArchSpec, batch_size: int = 16) -> float:
        """Mean next-token loss (nats/token) of ``spec``'s sub-network over the validation windows."""
        total = 0.0
        for i in range(0, len(self.windows), batch_size):
            x = self.windows[i : i + batch_size]
            total += float(self.net(x, spec, labels=x).loss) * len(x)
        return total / len(self.windows)


_LOADED: dict[tuple[str, int], TrainedSupernet] = {}


def load(folder: str | os.PathLike) -> TrainedSupernet:
    """The trained supernet in ``folder``, cached in this process (a rewritten folder is re-read)."""
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise ValueError(
            f"supernet: no trained supernet in {str(folder)!r} ({META} missing); train it with "
            f"`snakemake --cores 1 {folder}` (rule supernet) or `paretolm proxy supernet --space "
            f"<space file> --out {folder}`"
        )
    key = (str(folder.resolve()), meta_path.stat().st_mtime_ns)
    if key not in _LOADED:
        meta = json.loads(meta_path.read_text())
        space = SearchSpace.from_dict(meta["space"])
        net = Supernet(space, meta["vocab_size"], meta["max_seq_len"], layout=meta["layout"])
        load_model(net, str(folder / WEIGHTS))
        _LOADED[key] = TrainedSupernet(net.eval(), meta, load_file(str(folder / WINDOWS))["input_ids"])
    return _LOADED[key]


__all__ = ["Supernet", "TrainedSupernet", "extreme", "load", "train_supernet"]
