"""``paretolm proxy``: list the registered proxies, score specs, check proxies on NAS-Bench-BERT.

* ``paretolm proxy list``: every proxy with its sign convention and whether it needs data.
* ``paretolm proxy score --proxies merino_entropy,decoder_params --json -``: reads specs as JSON
  lines (a file or ``-`` for stdin) and prints one JSON object per line, ``arch_id`` plus one key
  per proxy. Data-dependent proxies need ``--data``: a config YAML (its ``proxies.data`` block, or a
  bare data block with ``dataset``/``tokenizer``, read by ``paretolm.data.load_batch``) or a plain
  text file (tokenized with the GPT-2 tokenizer at ``$PARETOLM_DATA/tokenizers/gpt2``).
* ``paretolm proxy nas-bench-bert <dir>``: Spearman correlations with GLUE of our shape-only
  proxies on all 500 NAS-Bench-BERT encoders, next to those of the published proxy scores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SIGN = "higher = lower predicted perplexity"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("proxy", help="score architectures with training-free proxies")
    sub = parser.add_subparsers(dest="proxy_command", required=True)

    lst = sub.add_parser("list", help="every registered proxy, its sign convention and whether it needs data")
    lst.add_argument("--json", action="store_true", help="one JSON object per proxy instead of a table")
    lst.set_defaults(func=_list)

    score = sub.add_parser("score", help="score specs read as JSON lines")
    score.add_argument("--proxies", required=True, help="comma-separated proxy names (see `proxy list`)")
    score.add_argument("--json", required=True, metavar="FILE",
                       help="JSON-lines file of specs, or - for stdin")
    score.add_argument("--data", default=None,
                       help="config YAML or text file giving the batch for data-dependent proxies")
    score.add_argument("--seq-len", type=int, default=192, help="tokens per sequence (default 192)")
    score.add_argument("--batch-size", type=int, default=8, help="sequences in the batch (default 8)")
    score.add_argument("--seed", type=int, default=0, help="seed of the batch and of model initialisation")
    score.add_argument("--costs", action="store_true", help="also print <proxy>_seconds and <proxy>_flops")
    score.add_argument("--entropy-eps", type=float, default=None, help="eps of merino_entropy (default 1)")
    score.set_defaults(func=_score)

    nb = sub.add_parser("nas-bench-bert", help="SRC with GLUE on NAS-Bench-BERT, ours next to the published")
    nb.add_argument("dir", help="the nas-bench-bert folder (BERT_benchmark.json, "
                    "BERT_results_activation.csv)")
    nb.add_argument("--out", default=None, help="Parquet file for the per-architecture scores")
    nb.set_defaults(func=_nas_bench_bert)


# -- list --------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    from ..proxies import registry

    rows = [
        {"name": p.name, "needs_data": p.needs_data, "sign": SIGN, "doc": " ".join(p.doc.split())}
        for p in sorted(registry().values(), key=lambda p: (p.needs_data, p.name))
    ]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'proxy':<{width}}  data  sign: {SIGN}")
    for r in rows:
        print(f"{r['name']:<{width}}  {'yes ' if r['needs_data'] else 'no  '}  {r['doc']}")
    return 0


# -- score -------------------------------------------------------------------------------------
def _read_specs(path: str) -> Iterator[tuple[int, Any]]:
    from ..arch import ArchSpec

    fh = sys.stdin if path == "-" else open(path)
    try:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, ArchSpec.from_json(line)
            except ValueError as e:
                raise ValueError(f"line {lineno}: {e}") from None
    finally:
        if fh is not sys.stdin:
            fh.close()


def _data_root() -> Path:
    return Path(os.environ.get("PARETOLM_DATA", "../shared/data"))


def text_batch(path: str | Path, batch_size: int, seq_len: int, seed: int):
    """A seeded ``[batch_size, seq_len]`` batch of GPT-2 token ids from random windows of a text file."""
    import numpy as np
    import torch
    from tokenizers import ByteLevelBPETokenizer

    tok_dir = _data_root() / "tokenizers" / "gpt2"
    if not (tok_dir / "vocab.json").is_file():
        raise ValueError(f"data: GPT-2 tokenizer not found at {tok_dir} (set PARETOLM_DATA)")
    tok = ByteLevelBPETokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    ids = np.asarray(tok.encode(Path(path).read_text(encoding="utf-8")).ids, dtype=np.int64)
    if len(ids) < seq_len + 1:
        raise ValueError(f"data: {path} has {len(ids)} tokens, fewer than seq_len={seq_len} + 1")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - seq_len + 1, size=batch_size)
    return torch.from_numpy(np.stack([ids[s:s + seq_len] for s in starts]))


def load_data_batch(data: str, batch_size: int, seq_len: int, seed: int):
    """The token batch for data-dependent proxies from a config YAML or a text file."""
    path = Path(data)
    if not path.is_file():
        raise ValueError(f"data: {data} is not a file")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        from ..data import load_batch

        cfg = yaml.safe_load(path.read_text())
        if not isinstance(cfg, Mapping):
            raise ValueError(f"data: {data} does not hold a mapping")
        block = cfg.get("proxies", {}).get("data") if isinstance(cfg.get("proxies"), Mapping) else None
        if block is None and "dataset" in cfg:
            block = cfg
        if not isinstance(block, Mapping):
            raise ValueError(f"data: {data} has no proxies.data block (nor dataset/tokenizer keys)")
        block = dict(block)
        for key in ("datasets", "tokenizers"):
            if key in cfg and key not in block:
                block[key] = cfg[key]
        return load_batch(block, batch_size, seq_len, seed)
    return text_batch(path, batch_size, seq_len, seed)


def _score(args: argparse.Namespace) -> int:
    import time

    from ..proxies import get

    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    if not names:
        raise ValueError("proxies: give at least one proxy name")
    proxies = [get(n) for n in names]
    if args.seq_len <= 0 or args.batch_size <= 0:
        raise ValueError("seq-len/batch-size: must be positive")
    if args.entropy_eps is not None:
        from ..proxies import entropy

        entropy.configure(eps=args.entropy_eps)
    batch = None
    if any(p.needs_data for p in proxies):
        if args.data is None:
            need = [p.name for p in proxies if p.needs_data]
            raise ValueError(f"data: proxies {need} need --data (a config YAML or a text file)")
        batch = load_data_batch(args.data, args.batch_size, args.seq_len, args.seed)
    for _, spec in _read_specs(args.json):
        row: dict[str, Any] = {"arch_id": spec.arch_id}
        for p in proxies:
            t0 = time.perf_counter()
            if p.needs_data:
                from ..proxies.zero_cost import run_data_proxy

                value, flops = run_data_proxy(p, spec, batch, seed=args.seed)
                if args.costs:
                    row[f"{p.name}_flops"] = flops
            else:
                value = p.fn(spec, seq_len=args.seq_len)
            row[p.name] = _json_float(value)
            if args.costs:
                row[f"{p.name}_seconds"] = time.perf_counter() - t0
        print(json.dumps(row), flush=True)
    return 0


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# -- NAS-Bench-BERT ----------------------------------------------------------------------------
# Published proxy columns of BERT_results_activation.csv (raw, not the "Normalized" variants).
PUBLISHED = (
    "Number of Parameters", "Synaptic Diversity", "Synaptic Saliency", "Activation Distance",
    "Jacobian Score", "Head Importance", "Head Confidence", "Head Softmax Confidence",
)


def nas_bench_bert_shapes(layers: list[Mapping[str, Any]], hidden: int):
    """Our sub-layer view of a NAS-Bench-BERT encoder (see ``docs/proxies.md``): SA (SDP or WMA) has
    Q, K, V, O ``hidden x hidden``; LT (DFT/DCT) has no trainable matrix; DSC's pointwise convolution
    is one ``hidden x hidden`` matrix (its depthwise kernel is per-channel, not a dense map); each
    of ``num_feed_forward`` stacked FFNs has ``hidden x d_ff`` and ``d_ff x hidden``."""
    from ..proxies.entropy import Sublayer

    subs = []
    for i, layer in enumerate(layers):
        op = layer.get("operation_type")
        if op == "SA":
            subs.append(Sublayer("mha", ((hidden, hidden),) * 4, hidden))
        elif op == "DSC":
            subs.append(Sublayer("mha", ((hidden, hidden),), hidden))
        elif op != "LT":
            raise ValueError(f"encoder_layers[{i}].operation_type: unknown operation {op!r}")
        f = int(layer["feed_forward_dimension"])
        for _ in range(int(layer["num_feed_forward"])):
            subs.append(Sublayer("ffn", ((hidden, f), (f, hidden)), f))
    return subs


def nas_bench_bert_entropy(layers: list[Mapping[str, Any]], hidden: int) -> float:
    from ..proxies.entropy import entropy_mp, penalty, settings

    cfg = settings()
    total = 0.0
    for sub in nas_bench_bert_shapes(layers, hidden):
        value = sum(entropy_mp(m, n, cfg.eps) for m, n in sub.shapes)
        weight = cfg.alpha[0] if sub.kind == "mha" else cfg.alpha[1]
        total += weight * penalty(len(layers), sub.width, cfg.beta) * value
    return total


def nas_bench_bert_matrix_params(layers: list[Mapping[str, Any]], hidden: int) -> int:
    return sum(m * n for sub in nas_bench_bert_shapes(layers, hidden) for m, n in sub.shapes)


def representable(layers: list[Mapping[str, Any]]) -> bool:
    """Whether our homogeneous ``bert`` backbone (SDP self-attention, one FFN per layer) is exact."""
    keys = {(la["num_operation_heads"], la["feed_forward_dimension"], la["num_feed_forward"])
            for la in layers}
    return (all(la["operation_type"] == "SA" and la.get("operation_parameter") == "SDP" for la in layers)
            and len(keys) == 1 and next(iter(keys))[2] == 1)


def nas_bench_bert_table(directory: str | Path):
    """One row per NAS-Bench-BERT architecture: GLUE, our proxies, the published proxies."""
    import pandas as pd

    d = Path(directory)
    bench_path, csv_path = d / "BERT_benchmark.json", d / "BERT_results_activation.csv"
    for p in (bench_path, csv_path):
        if not p.is_file():
            raise ValueError(f"dir: {p.name} not found in {d}")
    bench = json.loads(bench_path.read_text())
    rows = []
    for rec in bench:
        over = rec["hparams"]["model_hparam_overrides"]
        layers, hidden = over["nas_config"]["encoder_layers"], int(over["hidden_size"])
        rows.append({
            "ID": int(rec["id"]), "glue": float(rec["scores"]["glue"]), "hidden_size": hidden,
            "n_layer": len(layers), "representable": representable(layers),
            "merino_entropy": nas_bench_bert_entropy(layers, hidden),
            "matrix_params": nas_bench_bert_matrix_params(layers, hidden),
        })
    ours = pd.DataFrame(rows)
    published = pd.read_csv(csv_path)[["ID", *PUBLISHED]]
    return ours.merge(published, on="ID", how="inner")


def nas_bench_bert_src(table) -> list[dict[str, Any]]:
    from scipy.stats import spearmanr

    out = []
    for col, who in [("merino_entropy", "paretolm"), ("matrix_params", "paretolm")] + [
        (c, "published") for c in PUBLISHED
    ]:
        ok = table[[col, "glue"]].replace([float("inf"), float("-inf")], float("nan")).dropna()
        src = spearmanr(ok[col], ok["glue"])[0] if len(ok) > 2 else float("nan")
        out.append({"proxy": col, "source": who, "n": len(ok), "src_glue": float(src)})
    return out


def _nas_bench_bert(args: argparse.Namespace) -> int:
    table = nas_bench_bert_table(args.dir)
    srcs = nas_bench_bert_src(table)
    print(f"NAS-Bench-BERT: {len(table)} architectures; {int(table['representable'].sum())} exactly "
          "representable by the homogeneous SDP `bert` backbone (data-dependent proxies need that).")
    print("Spearman with GLUE (higher = better proxy):")
    for r in srcs:
        print(f"  {r['proxy']:<26} {r['source']:<9} n={r['n']:<4} {r['src_glue']:+.4f}")
    if args.out:
        from ..artifacts import provenance, write_table

        prov = provenance("proxy-nas-bench-bert", {"src": srcs}, source_dir=str(args.dir))
        write_table(table, args.out, prov)
    return 0
