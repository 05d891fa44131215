"""``paretolm measure``: measure architectures on this machine as one hardware target, for import.

    paretolm measure --archs results/samples/gpt2_cpu_small.parquet --hardware arm --out arm.parquet

runs on the device itself with the core install (no workflow extras). ``--archs`` is a table with a
``spec`` column (the sample stage's output, a search archive) or JSON lines of specs; the target's
settings come from the workflow's config (``--config``). The output is the profile stage's
measurement table with the device's fingerprint in its provenance; copied into the target's import
folder it is what a ``source: import`` target reads. Measurements go through the cache
(``--cache``), so a killed run resumes where it stopped. docs/hardware.md, "Measuring on a board".
"""

from __future__ import annotations

import argparse
import logging

from paretolm.commands import COMMANDS


def cmd_measure(args: argparse.Namespace) -> int:
    from paretolm.config import load_measurement_settings
    from paretolm.hardware.sources.device import measure_table, read_archs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    part = load_measurement_settings(args.config, args.hardware)
    specs = read_archs(args.archs)
    if not specs:
        raise ValueError(f"--archs: {args.archs} holds no architectures")
    measure_table(args.hardware, part, specs, args.cache, args.out, inputs=[args.archs])
    print(f"wrote {len(specs)} measurements of {args.hardware!r} to {args.out}")
    return 0


@COMMANDS.register("measure")
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "measure",
        help="measure architectures on this machine (for a source: import target)",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("--archs", required=True, help="a Parquet table with a 'spec' column, or JSON lines of specs")
    p.add_argument("--hardware", required=True, help="the hardware target (a name under 'hardware' in the config)")
    p.add_argument("--out", required=True, help="the measurement table to write (.parquet)")
    p.add_argument("--config", default="config/config.yaml", help="the workflow's config (default: %(default)s)")
    p.add_argument(
        "--cache",
        default="results/cache/measurements",
        help="measurement cache folder, so a killed run resumes (default: %(default)s)",
    )
    p.set_defaults(func=cmd_measure)
