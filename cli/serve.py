"""`switchboard serve|demo`: start the dashboard face. Panel and Bokeh load only when one of these
commands runs, never for the other commands."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands
from core.signin.settings import MODES

AUTH_HELP = (
    "how operators sign in: token (default; prints a sign-in URL), oidc (SWITCHBOARD_OIDC_*), "
    "basic (`switchboard operator add`), none (loopback only)"
)


def register(commands: Commands) -> None:
    serve = commands.add("serve", _serve, "serve the dashboard (panel serve)")
    _serving_arguments(serve)
    serve.add_argument("--show", action="store_true", help="open a browser")

    demo = commands.add("demo", _demo, "start local sample servers, register them, and serve the dashboard")
    _serving_arguments(demo)


def _serving_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="localhost")
    parser.add_argument("--auth", choices=MODES, default="token", help=AUTH_HELP)
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow a non-loopback --address with an http:// SWITCHBOARD_PUBLIC_URL (sign-ins in clear)",
    )


def _serve(args: argparse.Namespace) -> int | None:
    from dashboard.serve import serve

    return serve(
        port=args.port,
        address=args.address,
        show=args.show,
        store=getattr(args, "store", None),
        auth=args.auth,
        insecure_http=args.insecure_http,
    )


def _demo(args: argparse.Namespace) -> int | None:
    from dashboard.demo import run_demo

    return run_demo(
        port=args.port,
        address=args.address,
        store=getattr(args, "store", None),
        auth=args.auth,
        insecure_http=args.insecure_http,
    )
