"""`switchboard serve`: `panel serve` over the page scripts, with the OAuth callback plugin route."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit

from core.public_url import PUBLIC_URL_ENV, public_url
from dashboard import runtime

PAGES_DIR = Path(__file__).with_name("pages")
INDEX_PAGE = "overview"
STORE_ENV = "SWITCHBOARD_STORE"


def serve(
    port: int = runtime.DEFAULT_PORT, address: str = "localhost", show: bool = False, store: str | None = None
) -> int:
    """Serve the dashboard in this process until interrupted."""
    from panel.command.serve import Serve

    if store:
        os.environ[STORE_ENV] = store
    # The OAuth redirect_uri is built from the public origin, never from a request's Host header.
    os.environ.setdefault(PUBLIC_URL_ENV, f"http://localhost:{port}")
    # Open the store (migrations, key file) now, not inside the first request on the event loop.
    runtime.service()
    parser = argparse.ArgumentParser(prog="panel serve")
    command = Serve(parser=parser)
    command.invoke(parser.parse_args(panel_arguments(port, address, show)))
    return 0


def panel_arguments(port: int, address: str, show: bool) -> list[str]:
    """The `panel serve` command line for the dashboard."""
    pages = sorted(str(p) for p in PAGES_DIR.glob("*.py") if p.name != "__init__.py")
    arguments = [
        *pages,
        "--port",
        str(port),
        "--address",
        address,
        "--plugins",
        "dashboard.plugins",
        "--index",
        INDEX_PAGE,
    ]
    for origin in _websocket_origins(port, address):
        arguments += ["--allow-websocket-origin", origin]
    if show:
        arguments.append("--show")
    return arguments


def _websocket_origins(port: int, address: str) -> list[str]:
    public = urlsplit(public_url())
    origins = {f"localhost:{port}", f"127.0.0.1:{port}", f"{address}:{port}", public.netloc}
    return sorted(o for o in origins if o)
