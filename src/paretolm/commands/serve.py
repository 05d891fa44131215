"""``paretolm serve``: answer measurement requests for one hardware target over HTTP.

    PARETOLM_TOKEN=... paretolm serve --hardware arm [--host 127.0.0.1] [--port 8750]

runs on the device with the core install; a workflow whose target has ``source: remote`` sends its
candidates here. The shared secret is read from the environment variable named by ``--token-env``
(default ``PARETOLM_TOKEN``, at least 16 characters); requests without it are refused. The server
listens on 127.0.0.1 unless ``--host`` says otherwise; reach it through an SSH tunnel rather than
opening it to a network. Limits and checks: ``paretolm.hardware.sources.server``; docs/hardware.md.
"""

from __future__ import annotations

import argparse
import logging

from paretolm.commands import COMMANDS


def cmd_serve(args: argparse.Namespace) -> int:
    from paretolm.config import load_measurement_settings
    from paretolm.hardware.profiling import settings_from_params
    from paretolm.hardware.sources.remote import MIN_TOKEN_LENGTH, token_from_env
    from paretolm.hardware.sources.server import Limits, make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("paretolm.serve")
    token = token_from_env(args.hardware, args.token_env)
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"{args.token_env}: the token must have at least {MIN_TOKEN_LENGTH} characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    for name in ("max_params", "max_body", "rate", "max_clients"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    settings = settings_from_params(load_measurement_settings(args.config, args.hardware))
    limits = Limits(
        max_params=args.max_params, max_body=args.max_body, rate=args.rate, max_clients=args.max_clients, wait=args.wait
    )
    server = make_server(args.hardware, settings, token, args.cache, args.host, args.port, limits)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s over plain HTTP: anyone who can see the traffic can read the token; "
            "prefer --host 127.0.0.1 and an SSH tunnel (docs/hardware.md)",
            args.host,
        )
    print(f"paretolm serve: measuring {args.hardware!r} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


@COMMANDS.register("serve")
def register(subparsers: argparse._SubParsersAction) -> None:
    from paretolm.hardware.sources import DEFAULT_TOKEN_ENV
    from paretolm.hardware.sources.server import Limits

    limits = Limits()
    p = subparsers.add_parser(
        "serve",
        help="answer measurement requests over HTTP (for a source: remote target)",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("--hardware", required=True, help="the hardware target this machine measures")
    p.add_argument("--config", default="config/config.yaml", help="the workflow's config (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8750, help="port (default: %(default)s; 0: any free port)")
    p.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable holding the shared secret (default: %(default)s)",
    )
    p.add_argument("--cache", default="results/cache/measurements", help="measurement cache (default: %(default)s)")
    for flag, kind, help_text in (
        ("--max-params", int, "largest model to build, in parameters"),
        ("--max-body", int, "largest request body, in bytes"),
        ("--rate", int, "requests per minute from one client"),
        ("--max-clients", int, "connections at once"),
        ("--wait", float, "seconds a request waits for the running measurement"),
    ):
        default = getattr(limits, flag[2:].replace("-", "_"))
        p.add_argument(flag, type=kind, default=default, help=f"{help_text} (default: {default})")
    p.set_defaults(func=cmd_serve)
