"""``paretolm export``: a trained model as a Hugging Face folder anyone can load.

    paretolm export runs/tiny --out hf/tiny [--frontier results/pareto_cpu.parquet]
        [--eval results/eval/<arch_id>.parquet] [--tokenizer DIR_OR_JSON] [--wrapper]

MODEL is a ``paretolm train`` run folder or its ``model/`` (also the workflow's
``results/train/<arch_id>/model``). The tokenizer is looked up in MODEL, then in
``<run>/tokenizer``; ``--tokenizer`` names it otherwise (a folder, or a ``tokenizer.json`` such as
``results/cache/data/tokenizers/<name>-<hash>.json``). ``--frontier`` and ``--eval`` give the
model card its latency, memory, perplexity and origin (the rows whose architecture is the
model's). Homogeneous gpt2 / opt specs become stock ``GPT2LMHeadModel`` / ``OPTForCausalLM``
(``--wrapper`` keeps the paretolm wrapper); see ``paretolm.export.folder``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paretolm.commands import COMMANDS


def model_folder(path: str | Path) -> Path:
    """The folder holding the saved model: ``path`` itself or its ``model/``."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    raise FileNotFoundError(f"MODEL: no saved model (config.json) in {path} or {path / 'model'}")


def cmd_export(args: argparse.Namespace) -> int:
    from paretolm.core.artifacts import read_provenance, read_table
    from paretolm.export.folder import RANK_KEY, export_model, find_tokenizer, match_row, ranked
    from paretolm.models.hf import ParetoLMConfig

    args.sort_by = args.sort_by or RANK_KEY
    folder = model_folder(args.model)
    spec = ParetoLMConfig.from_pretrained(folder).arch_spec
    tokenizer = find_tokenizer(folder, args.tokenizer)
    frontier = frontier_prov = evaluation = eval_prov = rank = None
    if args.frontier:
        frontier = ranked(read_table(args.frontier), args.sort_by)
        frontier_prov = read_provenance(args.frontier)
        row = match_row(frontier, spec)
        if row is None:
            raise ValueError(f"--frontier: no row of {args.frontier} is the architecture {spec.arch_id}")
        rank = int(frontier.index[frontier["arch_id"] == row["arch_id"]][0])
    if args.eval:
        evaluation = match_row(read_table(args.eval), spec)
        if evaluation is None:
            raise ValueError(f"--eval: no row of {args.eval} is the architecture {spec.arch_id}")
        eval_prov = read_provenance(args.eval)
    summary = export_model(
        folder,
        args.out,
        tokenizer=tokenizer,
        frontier=frontier,
        frontier_prov=frontier_prov,
        evaluation=evaluation,
        eval_prov=eval_prov,
        rank=rank,
        rank_key=args.sort_by,
        stock=not args.wrapper,
    )
    print(json.dumps(summary))
    return 0


@COMMANDS.register("export")
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model as a Hugging Face folder with a model card",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("model", metavar="MODEL", help="a paretolm train run folder or its model/ folder")
    p.add_argument("--out", required=True, help="the folder to write (replaced atomically)")
    p.add_argument("--tokenizer", help="tokenizer folder or tokenizer.json (default: found beside the model)")
    p.add_argument("--frontier", help="frontier table the model came from (latency, memory, origin)")
    p.add_argument("--eval", help="evaluation table of the trained model (perplexity, zero-shot, latency)")
    p.add_argument("--sort-by", default=None, help="frontier column its rank is taken by (default: latency_ms)")
    p.add_argument(
        "--wrapper", action="store_true", help="keep the paretolm wrapper even where a stock GPT-2 / OPT class fits"
    )
    p.set_defaults(func=cmd_export)
