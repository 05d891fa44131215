"""``paretolm audit results/``: report stale, untraceable or inconsistent artifacts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import COMMANDS


@COMMANDS.register("audit")
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "audit",
        help="check every artifact under a results directory",
        description="Read every Parquet artifact under RESULTS and report the ones with no provenance, "
        "whose inputs or config changed since they were made (stale), or that disagree with their "
        "inputs. Exits 1 when anything is reported.",
    )
    p.add_argument("results", nargs="?", default="results", help="results directory (default: results)")
    p.add_argument("--config", action="append", default=None, metavar="YAML",
                   help="config file(s) the run used, merged in order (default: config/config.yaml "
                   "if present; 'none' skips the config check)")
    p.add_argument("--root", default=None,
                   help="directory the recorded input paths are relative to (default: parent of RESULTS)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..audit import artifacts, audit, report
    from ..config import merge, validate_config

    root = Path(args.root) if args.root else Path(args.results).resolve().parent
    paths = args.config if args.config is not None else (
        [str(root / "config/config.yaml")] if (root / "config/config.yaml").exists() else []
    )
    config = None
    if paths and paths != ["none"]:
        config = {}
        for path in paths:
            with open(path) as fh:
                config = merge(config, yaml.safe_load(fh) or {})
        config = validate_config(config, root)
    findings = audit(args.results, config, root)
    print(report(findings, len(artifacts(args.results)), as_json=args.json))
    sys.stdout.flush()
    return 1 if findings else 0
