"""``paretolm audit results/``: report stale, untraceable or inconsistent artifacts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paretolm.commands import COMMANDS


@COMMANDS.register("audit")
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "audit",
        help="check every artifact under a results directory",
        description="Read every Parquet artifact under RESULTS and report the ones with no provenance, "
        "whose inputs or config changed since they were made (stale), or that disagree with their "
        "inputs. Exits 1 when anything is reported or there is nothing to audit.",
    )
    p.add_argument("results", nargs="?", default="results", help="results directory (default: results)")
    p.add_argument(
        "--config",
        action="append",
        default=None,
        metavar="YAML",
        help="config file(s) the run added with --configfile, merged in order over "
        "config/config.yaml as Snakemake does ('none' skips the config check)",
    )
    p.add_argument(
        "--root", default=None, help="directory the recorded input paths are relative to (default: parent of RESULTS)"
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paretolm.config import merge, validate_config
    from paretolm.core import yamlfile
    from paretolm.ops.audit import artifacts, audit, report

    root = Path(args.root) if args.root else Path(args.results).resolve().parent
    base = root / "config/config.yaml"
    # as Snakemake does: the workflow's config first, then the --configfile layers over it
    paths = [str(base)] if base.exists() else []
    if args.config == ["none"]:
        paths = []
    elif args.config:
        paths += [p for p in args.config if Path(p).resolve() != base.resolve()]
    config = None
    if paths:
        config = {}
        for path in paths:
            config = merge(config, yamlfile.load(path) or {})
        config = validate_config(config, root, files=paths)
    found = artifacts(args.results)
    findings = audit(args.results, config, root)
    print(report(findings, len(found), as_json=args.json))
    sys.stdout.flush()
    return 1 if findings or not found else 0
