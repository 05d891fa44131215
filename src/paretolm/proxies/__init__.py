"""Proxies: cheap scores that predict a trained model's perplexity without training it.

Every proxy is one function registered with ``@proxy`` in a module of this package (scanned on
first use; declaring one imports no torch). Sign convention: each is reported so that **higher
predicts lower perplexity**. Analytic proxies take the spec; data-dependent ones
(``needs_data=True``) take an untrained model built from the spec and one batch of token ids. A
proxy with knobs names a frozen dataclass of ``paretolm.core.settings`` fields as its ``settings``:
the config schema's ``proxies.settings.<name>`` is generated from it, config fills it, and every
stage that scores (proxies, search, correlate, the CLI) goes through one ``Scorer`` built from the
same config part, so they all score with the same settings. A proxy that reads something trained
beforehand (``trained``) names it with ``artifact`` (the workflow makes that an input of every job
that scores it) and its one-off cost with ``setup_seconds``; ``check`` says what it needs from the
rest of the config, before any job.

    @proxy("my_proxy", doc="formula ...")
    def my_proxy(spec: ArchSpec, seq_len: int) -> float: ...

    @proxy("my_data_proxy", needs_data=True, doc="formula ...")
    def my_data_proxy(model: nn.Module, batch: torch.Tensor, spec: ArchSpec) -> float: ...
"""

from __future__ import annotations

from paretolm.proxies.base import PROXIES, Proxy, get, proxy, registry
from paretolm.proxies.scorer import Scorer, score_table

__all__ = ["PROXIES", "Proxy", "Scorer", "get", "proxy", "registry", "score_table"]
