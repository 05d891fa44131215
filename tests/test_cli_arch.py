"""``paretolm arch count`` / ``sample`` end to end, in a subprocess and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paretolm.cli import main
from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count

ROOT = Path(__file__).resolve().parents[1]
PAPER_GPT2 = {
    "backbone": "gpt2",
    "n_layer": 3,
    "d_model": 256,
    "n_head": [2, 2, 2],
    "d_inner": [3072, 3776, 3904],
    "div_val": 1,
}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paretolm.cli", *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_count_one_spec(capsys):
    assert main(["arch", "count", "--json", json.dumps(PAPER_GPT2)]) == 0
    out = json.loads(capsys.readouterr().out)
    spec = ArchSpec.from_dict(PAPER_GPT2)
    c = count(spec, 192)
    assert out == {
        "arch_id": spec.arch_id,
        "decoder_params": 6_309_632,
        "embedding_params": c.embedding_params,
        "total_params": c.total_params,
        "flops": c.flops,
    }
    assert main(["arch", "count", "--json", json.dumps(PAPER_GPT2), "--seq-len", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["flops"] == count(spec, 64).flops


def test_sample_then_count_stream_in_order():
    sampled = run("arch", "sample", "--space", "lts_transformer_xl", "-n", "25", "--seed", "3")
    assert sampled.returncode == 0, sampled.stderr
    lines = sampled.stdout.splitlines()
    assert len(lines) == 25
    specs = [ArchSpec.from_json(line) for line in lines]
    assert all(s.backbone == "transformer_xl" for s in specs)
    assert len({s.arch_id for s in specs}) == 25
    # same seed, same specs; the canonical JSON is printed
    again = run("arch", "sample", "--space", "config/spaces/lts_transformer_xl.yaml", "-n", "25", "--seed", "3")
    assert again.stdout == sampled.stdout
    assert all(line == s.to_json() for line, s in zip(lines, specs, strict=True))
    counted = run("arch", "count", "--json", "-", "--seq-len", "128", stdin=sampled.stdout + "\n")
    assert counted.returncode == 0, counted.stderr
    rows = [json.loads(line) for line in counted.stdout.splitlines()]
    assert [r["arch_id"] for r in rows] == [s.arch_id for s in specs]
    for r, s in zip(rows, specs, strict=True):
        c = count(s, 128)
        assert (r["decoder_params"], r["total_params"]) == (c.decoder_params, c.total_params)
        assert r["flops"] == c.flops


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            [
                "arch",
                "count",
                "--json",
                '{"backbone": "gpt2", "n_layer": 2, "d_model": 64, "n_head": [2, 3], "d_inner": 128}',
            ],
            None,
            "n_head[1]",
        ),
        (["arch", "count", "--json", "{not json"], None, "spec: not valid JSON"),
        (["arch", "count", "--json", '{"backbone": "lstm"}'], None, "backbone"),
        (["arch", "count", "--json", json.dumps(PAPER_GPT2), "--seq-len", "0"], None, "--seq-len"),
        (["arch", "sample", "--space", "no_such_space", "-n", "2"], None, "--space"),
        (["arch", "sample", "--space", "lts_gpt2", "-n", "0"], None, "-n"),
    ],
)
def test_errors_exit_nonzero_with_message(args, stdin, message):
    result = run(*args, stdin=stdin)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_bad_line_loses_no_other_line():
    lines = [
        json.dumps(PAPER_GPT2),
        '{"backbone": "opt", "n_layer": 1}',
        "{not json",
        "",
        json.dumps({**PAPER_GPT2, "max_seq_len": 100}),
        json.dumps({**PAPER_GPT2, "d_model": 512}),
    ]
    result = run("arch", "count", "--json", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1 and "3 line(s) failed" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("line") for r in rows] == [None, 2, 3, 5, None]
    assert rows[1]["error"].startswith("d_model: missing") and rows[2]["error"].startswith("spec: not valid JSON")
    assert rows[3]["error"].startswith("--seq-len: 192 exceeds the architecture's max_seq_len=100")
    assert rows[0]["arch_id"] == ArchSpec.from_dict(PAPER_GPT2).arch_id
    assert rows[4]["arch_id"] == ArchSpec.from_dict({**PAPER_GPT2, "d_model": 512}).arch_id


def test_counting_does_not_import_torch():
    code = (
        "import sys, json; from paretolm.cli import main; "
        f"main(['arch', 'count', '--json', json.dumps({PAPER_GPT2!r})]); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.splitlines()[-1] == "False"
