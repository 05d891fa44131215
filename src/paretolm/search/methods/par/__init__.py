"""PAR Transformer's method: its design rules and its Gumbel-softmax supernet search."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core import lazy
from paretolm.core.arch import COMMON, ArchSpec
from paretolm.core.settings import check, setting
from paretolm.core.spaces import SearchSpace
from paretolm.search.methods import METHODS, Method, MethodSettings, SearchProblem, SearchResult
from paretolm.search.methods.par.rules import par_design_rules

SUPERNET = ("n_sublayer", "d_model", "n_head", "d_inner")
MAX = 10_000_000
# the search trains a supernet with torch: imported when a search runs, not when the method is declared
search = lazy.module("paretolm.search.methods.par.search")
torch = lazy.module("torch")
par_model = lazy.module("paretolm.models.par")


@dataclass(frozen=True)
class ParSettings(MethodSettings):
    """PAR's Gumbel-softmax supernet search over s/f/i sub-layers (a par space)."""

    data: dict[str, Any] | None = setting(
        None, doc="Token stream the supernet trains on (dataset, tokenizer, optional split), as proxies.data."
    )
    steps: int = setting(200, minimum=1, maximum=MAX)
    batch_size: int = setting(8, minimum=1, maximum=65536)
    seq_len: int = setting(64, minimum=2, maximum=1048576)
    lr: float = setting(0.003, exclusive_minimum=0, maximum=10)
    arch_lr: float = setting(0.03, exclusive_minimum=0, maximum=10)
    tau_start: float = setting(5.0, exclusive_minimum=0, maximum=10000)
    tau_end: float = setting(0.5, exclusive_minimum=0, maximum=10000)
    cost_weights: tuple[float, ...] = setting(
        (0.0, 1.0, 5.0, 20.0),
        min_items=1,
        items={"minimum": 0},
        doc="One search per weight of the expected FLOPs in the architecture loss.",
    )

    def __post_init__(self) -> None:
        check(self, "search.par")


class PAR(Method):
    """``search.method: par`` (settings in ``search.par``, a par space): one Gumbel-softmax
    supernet search per weight in ``cost_weights`` (the weight of the expected FLOPs in the
    architecture loss: 0 is PAR's quality-only search, larger weights trade quality for speed),
    each on the token stream of ``search.par.data`` (weights train on its first 90 %, the
    architecture logits on the rest). Each search's argmax layer string is a candidate, scored
    and measured like any other, so the weights trace a frontier. The widths are the space's
    fixed ones (the supernet's)."""

    settings = ParSettings
    backbone = "par"
    # the data block passes the config check; the tests give the problem its tokens themselves
    test_settings = {
        "steps": 3,
        "batch_size": 2,
        "seq_len": 16,
        "cost_weights": [0.0, 50.0],
        "data": {"dataset": "kjv", "tokenizer": "gpt2"},
    }

    def check(self, config: Mapping[str, Any], space: SearchSpace) -> None:
        data = config["search"]["par"]["data"]
        if not data:
            raise ValueError("search.par.data: par trains a supernet; give a data block {dataset, tokenizer}")
        for key, pool in (("dataset", config["datasets"]), ("tokenizer", config["tokenizers"])):
            if key not in data:
                raise ValueError(f"search.par.data.{key}: missing")
            if isinstance(data[key], str) and data[key] not in pool:
                raise ValueError(
                    f"search.par.data.{key}: unknown {key} {data[key]!r} (known: {', '.join(sorted(pool))})"
                )

    def run(self, problem: SearchProblem) -> SearchResult:
        block = problem.block
        fixed = problem.space.fixed
        missing = [k for k in SUPERNET if k not in fixed]
        if missing:
            raise ValueError(
                f"search.par.space: the supernet's {missing} must be fixed in space {problem.space.name!r}"
            )
        if problem.data is None:
            raise ValueError("search.par.data: par trains a supernet on a token stream; give a data block")
        vocab = int(fixed.get("vocab_size", COMMON["vocab_size"]))
        max_seq_len = int(fixed.get("max_seq_len", COMMON["max_seq_len"]))
        seq_len = int(block["seq_len"])
        if seq_len > max_seq_len:
            raise ValueError(f"search.par.seq_len: {seq_len} exceeds the space's max_seq_len={max_seq_len}")
        tokens = torch.from_numpy(np.asarray(problem.data, dtype=np.int64))
        if int(tokens.max()) >= vocab:
            raise ValueError(
                f"search.par.data: token id {int(tokens.max())} is outside the space's vocabulary "
                f"({vocab}); use a tokenizer with at most {vocab} tokens"
            )
        cut = int(len(tokens) * 0.9)
        rows = []
        for i, weight in enumerate(block["cost_weights"]):
            found = search.gumbel_par_search(
                par_model.token_batches(tokens[:cut], int(block["batch_size"]), seq_len, problem.seed),
                arch_batches=par_model.token_batches(tokens[cut:], int(block["batch_size"]), seq_len, problem.seed + 1),
                **{k: int(fixed[k]) for k in SUPERNET},
                vocab_size=vocab,
                max_seq_len=max_seq_len,
                steps=int(block["steps"]),
                seed=problem.seed,
                lr=float(block["lr"]),
                arch_lr=float(block["arch_lr"]),
                tau_start=float(block["tau_start"]),
                tau_end=float(block["tau_end"]),
                cost_weight=float(weight),
            )
            spec = problem.space.decode(problem.space.encode(found.spec))  # as the space defines it
            rows.append(
                {
                    "arch_id": spec.arch_id,
                    "spec": spec.to_json(),
                    "iteration": i,
                    "origin": "gumbel",
                    "cost_weight": float(weight),
                    "layers": found.notation,
                    "probs": json.dumps([[round(p, 4) for p in row] for row in found.probs]),
                    "final_arch_loss": found.history[-1]["arch_loss"] if found.history else float("nan"),
                    "broken_rules": json.dumps(par_design_rules(spec)),
                }
            )
        archive = pd.DataFrame(rows).drop_duplicates("arch_id").reset_index(drop=True)
        specs = [ArchSpec.from_json(s) for s in archive["spec"]]
        scores = problem.score(specs).drop(columns="arch_id")
        bounds = problem.bounds
        archive = pd.concat([archive, scores], axis=1)
        archive["in_bounds"] = [bounds.params_ok(r) for r in archive.to_dict("records")]
        hw = pd.DataFrame(problem.hardware(specs))
        archive = pd.concat([archive, hw.drop(columns=[c for c in hw.columns if c in archive.columns])], axis=1)
        return SearchResult(
            archive, archive.iloc[0:0], problem.objectives, {"searches": len(rows), "distinct": int(len(archive))}
        )


METHODS.add("par", PAR())

__all__ = ["PAR", "ParSettings", "par_design_rules"]
