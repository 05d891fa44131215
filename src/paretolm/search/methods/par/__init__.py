"""PAR Transformer's method: its design rules and its Gumbel-softmax supernet search."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from paretolm.core.arch import COMMON, ArchSpec
from paretolm.search.methods import METHODS, SearchProblem, SearchResult
from paretolm.search.methods.par.rules import par_design_rules
from paretolm.search.methods.par.search import ParSearchResult, ParSupernet, gumbel_par_search

SUPERNET = ("n_sublayer", "d_model", "n_head", "d_inner")


class PAR:
    """``search.method: par`` (settings in ``search.par``, a par space): one Gumbel-softmax
    supernet search per weight in ``cost_weights`` (the weight of the expected FLOPs in the
    architecture loss: 0 is PAR's quality-only search, larger weights trade quality for speed),
    each on the token stream of ``search.par.data`` (weights train on its first 90 %, the
    architecture logits on the rest). Each search's argmax layer string is a candidate, scored
    and measured like any other, so the weights trace a frontier. The widths are the space's
    fixed ones (the supernet's)."""

    def run(self, problem: SearchProblem) -> SearchResult:
        import torch

        from paretolm.models.par import token_batches

        block = problem.block
        fixed = problem.space.fixed
        missing = [k for k in SUPERNET if k not in fixed]
        if missing:
            raise ValueError(f"search.par.space: the supernet's {missing} must be fixed in space "
                             f"{problem.space.name!r}")
        if problem.data is None:
            raise ValueError("search.par.data: par trains a supernet on a token stream; give a data block")
        vocab = int(fixed.get("vocab_size", COMMON["vocab_size"]))
        max_seq_len = int(fixed.get("max_seq_len", COMMON["max_seq_len"]))
        seq_len = int(block["seq_len"])
        if seq_len > max_seq_len:
            raise ValueError(f"search.par.seq_len: {seq_len} exceeds the space's max_seq_len={max_seq_len}")
        tokens = torch.from_numpy(np.asarray(problem.data, dtype=np.int64))
        if int(tokens.max()) >= vocab:
            raise ValueError(f"search.par.data: token id {int(tokens.max())} is outside the space's vocabulary "
                             f"({vocab}); use a tokenizer with at most {vocab} tokens")
        cut = int(len(tokens) * 0.9)
        rows = []
        for i, weight in enumerate(block["cost_weights"]):
            found = gumbel_par_search(
                token_batches(tokens[:cut], int(block["batch_size"]), seq_len, problem.seed),
                arch_batches=token_batches(tokens[cut:], int(block["batch_size"]), seq_len, problem.seed + 1),
                **{k: int(fixed[k]) for k in SUPERNET}, vocab_size=vocab, max_seq_len=max_seq_len,
                steps=int(block["steps"]), seed=problem.seed, lr=float(block["lr"]), arch_lr=float(block["arch_lr"]),
                tau_start=float(block["tau_start"]), tau_end=float(block["tau_end"]), cost_weight=float(weight),
            )
            spec = problem.space.decode(problem.space.encode(found.spec))  # as the space defines it
            rows.append({"arch_id": spec.arch_id, "spec": spec.to_json(), "iteration": i, "origin": "gumbel",
                         "cost_weight": float(weight), "layers": found.notation,
                         "probs": json.dumps([[round(p, 4) for p in row] for row in found.probs]),
                         "final_arch_loss": found.history[-1]["arch_loss"] if found.history else float("nan"),
                         "broken_rules": json.dumps(par_design_rules(spec))})
        archive = pd.DataFrame(rows).drop_duplicates("arch_id").reset_index(drop=True)
        specs = [ArchSpec.from_json(s) for s in archive["spec"]]
        scores = problem.score(specs).drop(columns="arch_id")
        bounds = problem.bounds
        archive = pd.concat([archive, scores], axis=1)
        archive["in_bounds"] = [bounds.params_ok(r) for r in archive.to_dict("records")]
        hw = pd.DataFrame(problem.hardware(specs))
        archive = pd.concat([archive, hw.drop(columns=[c for c in hw.columns if c in archive.columns])], axis=1)
        return SearchResult(archive, archive.iloc[0:0], problem.objectives,
                            {"searches": len(rows), "distinct": int(len(archive))})


METHODS.add("par", PAR())

__all__ = ["PAR", "ParSearchResult", "ParSupernet", "gumbel_par_search", "par_design_rules"]
