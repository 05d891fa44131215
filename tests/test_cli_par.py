"""``paretolm par rules`` and ``paretolm par search`` end to end through the CLI entry point."""

from __future__ import annotations

import json

from conftest import data_path

from paretolm.cli import main
from paretolm.core.arch import ArchSpec


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip()
    return code, json.loads(out) if out else {}


def test_rules_pass_for_par_base_and_fail_for_interleaved(capsys):
    code, out = run(capsys, "par", "rules", "(sfff)x6 (f)x8")
    assert code == 0 and out == {"layers": "(sfff)x6 (f)x8", "broken": []}
    code, out = run(capsys, "par", "rules", "(sf)x6")
    assert code == 1 and [b.split(":")[0] for b in out["broken"]] == ["span", "share"]


def test_rules_reject_bad_notation(capsys):
    assert main(["par", "rules", "(sq)x2"]) == 2
    assert "layers" in capsys.readouterr().err


def test_search_on_real_text_is_seeded(capsys, tmp_path):
    shakespeare = data_path("corpora/tinyshakespeare/input.txt")
    text = tmp_path / "shakespeare.txt"
    text.write_bytes(shakespeare.read_bytes()[:100_000])
    argv = [
        "par",
        "search",
        "--text",
        str(text),
        "--positions",
        "4",
        "--d-model",
        "32",
        "--n-head",
        "2",
        "--d-inner",
        "64",
        "--steps",
        "15",
        "--seq-len",
        "32",
        "--seed",
        "3",
    ]
    code, first = run(capsys, *argv)
    assert code == 0
    spec = ArchSpec.from_dict(first["spec"])
    assert spec.backbone == "par" and len(spec.layers) == 4 and spec.arch_id == first["arch_id"]
    assert len(first["probs"]) == 4 and all(abs(sum(p) - 1) < 1e-3 for p in first["probs"])
    assert first["final_loss"]["step"] == 14
    _, again = run(capsys, *argv)
    assert again == first


def test_search_batches_come_from_the_shared_window_cutter():
    import numpy as np
    import torch

    from paretolm.data import random_windows
    from paretolm.models.par import token_batches

    tokens = torch.arange(1000)
    stream, rng = token_batches(tokens, 4, 16, seed=3), np.random.default_rng(3)
    for _ in range(3):
        batch = next(stream)
        assert torch.equal(batch, random_windows(tokens.numpy(), 4, 16, rng))
        assert (batch[:, 1:] - batch[:, :-1] == 1).all()  # contiguous windows
