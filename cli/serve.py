"""`switchboard serve|demo`: start the dashboard face. Panel and Bokeh load only when one of these
commands runs, never for the other commands."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands


def register(commands: Commands) -> None:
    serve = commands.add("serve", _serve, "serve the dashboard (panel serve)")
    serve.add_argument("--port", type=int, default=5006)
    serve.add_argument("--address", default="localhost")
    serve.add_argument("--show", action="store_true", help="open a browser")

    demo = commands.add("demo", _demo, "start local sample servers, register them, and serve the dashboard")
    demo.add_argument("--port", type=int, default=5006)
    demo.add_argument("--address", default="localhost")


def _serve(args: argparse.Namespace) -> int | None:
    from dashboard.serve import serve

    return serve(port=args.port, address=args.address, show=args.show, store=getattr(args, "store", None))


def _demo(args: argparse.Namespace) -> int | None:
    from dashboard.demo import run_demo

    return run_demo(port=args.port, address=args.address, store=getattr(args, "store", None))
