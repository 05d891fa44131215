"""``paretolm config``: the whole config schema (the file's sections with the blocks the plugins
generate), and a check of config files as the workflow runs it, without running anything.

* ``paretolm config schema [--json]``: the schema, with every plugin's block filled in;
* ``paretolm config check config/config.yaml [more.yaml ...]``: validate the files merged in order
  (as ``--configfile`` layers are), print the config with every default filled, exit 2 naming the
  key, file and line of the first problem.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from paretolm.commands import COMMANDS


@COMMANDS.register("config")
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="the config schema; check config files before a run")
    sub = p.add_subparsers(dest="config_command", required=True)
    s = sub.add_parser("schema", help="print the whole config schema (plugins' blocks included)")
    s.add_argument("--json", action="store_true", help="JSON instead of YAML")
    s.set_defaults(func=schema)
    c = sub.add_parser("check", help="validate config files merged in order; print the full config")
    c.add_argument("files", nargs="+", help="config YAML files, later ones over earlier ones")
    c.add_argument("--quiet", action="store_true", help="print nothing when the config is valid")
    c.set_defaults(func=check)


def schema(args: argparse.Namespace) -> int:
    from paretolm.config import load_schema

    full = load_schema()
    text = json.dumps(full, indent=2) if args.json else yaml.safe_dump(full, sort_keys=False, width=100)
    sys.stdout.write(text + ("\n" if args.json else ""))
    return 0


def check(args: argparse.Namespace) -> int:
    from paretolm.config import merge, validate_config
    from paretolm.core import yamlfile

    config: dict = {}
    for path in args.files:
        layer = yamlfile.load(path) or {}
        if not isinstance(layer, dict):
            raise ValueError(f"{path}: expected a mapping of config sections")
        config = merge(config, layer)
    full = validate_config(config, files=args.files)
    if not args.quiet:
        sys.stdout.write(yaml.safe_dump(full, sort_keys=False, width=100))
    return 0
