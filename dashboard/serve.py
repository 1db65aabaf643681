"""`switchboard serve`: `panel serve` over the page scripts, behind the sign-in.

It runs, in this process, exactly the command line `panel_arguments` builds (README shows it):

    BOKEH_SECRET_KEY=<the dashboard secret> panel serve <pages> --plugins dashboard.plugins \\
        --auth-module <dashboard/auth_module.py> --session-ids signed --index connectors \\
        --port PORT --address ADDRESS --allow-websocket-origin <SWITCHBOARD_PUBLIC_URL's host:port>

so a plain `panel serve` with those arguments is just as safe: the auth module gates every page and
the websocket, the plugin module serves the sign-in and OAuth routes, Bokeh signs session ids with
the dashboard secret (`core/signin/secret.py`; pages refuse sessions signed otherwise), and
websockets are accepted only from the public URL's origin.

Before listening it refuses what would expose the dashboard: `--auth none` on an address that is
not loopback, and a non-loopback address whose public URL is plain http (codes and sign-in cookies
in clear) unless `--insecure-http` says so.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import ConfigurationError
from core.public_url import PUBLIC_URL_ENV, public_url
from core.signin.settings import AUTH_ENV, MODES
from dashboard import runtime

PAGES_DIR = Path(__file__).with_name("pages")
AUTH_MODULE = Path(__file__).with_name("auth_module.py")
INDEX_PAGE = "overview"
STORE_ENV = "SWITCHBOARD_STORE"
BOKEH_SECRET_ENV = "BOKEH_SECRET_KEY"


def serve(
    port: int = runtime.DEFAULT_PORT,
    address: str = "localhost",
    show: bool = False,
    store: str | None = None,
    auth: str = "token",
    insecure_http: bool = False,
) -> int:
    """Serve the dashboard in this process until interrupted."""
    from dashboard.signin import front_door

    if store:
        os.environ[STORE_ENV] = store
    if auth not in MODES:
        raise ConfigurationError(f"--auth {auth} is not a sign-in mode", hint=f"use one of {MODES}")
    os.environ[AUTH_ENV] = auth  # a mode, not a secret: the auth module reads it as a plain panel serve would
    # The OAuth redirect_uri is built from the public origin, never from a request's Host header.
    os.environ.setdefault(PUBLIC_URL_ENV, f"http://localhost:{port}")
    check_exposure(address, auth, public_url(), insecure_http=insecure_http)
    door = front_door()  # the sign-in settings and the secret: a misconfiguration stops us here
    _sign_sessions_with(door.secret)
    from panel.command.serve import Serve  # after: Bokeh reads its secret once, when it loads

    # Open the store (migrations, key file) now, not inside the first request on the event loop.
    runtime.open_for_serving()
    parser = argparse.ArgumentParser(prog="panel serve")
    command = Serve(parser=parser)
    command.invoke(parser.parse_args(panel_arguments(port, address, show)))
    return 0


def panel_arguments(port: int, address: str, show: bool) -> list[str]:
    """The `panel serve` command line for the dashboard."""
    pages = sorted(str(p) for p in PAGES_DIR.glob("*.py") if p.name != "__init__.py")
    arguments = [
        *pages,
        "--plugins",
        "dashboard.plugins",
        "--auth-module",
        str(AUTH_MODULE),
        "--session-ids",
        "signed",
        "--index",
        INDEX_PAGE,
        "--port",
        str(port),
        "--address",
        address,
        "--allow-websocket-origin",
        urlsplit(public_url()).netloc,
    ]
    if show:
        arguments.append("--show")
    return arguments


def check_exposure(address: str, auth: str, public: str, *, insecure_http: bool) -> None:
    """Refuse, before listening, to serve without sign-in off loopback, or sign-ins over plain http
    to other machines."""
    loopback = serves_loopback_only(address)
    if auth == "none" and not loopback:
        raise ConfigurationError(
            f"--auth none serves only loopback addresses, not {address or 'every address'}",
            hint="use --auth token (the default), oidc or basic, or --address 127.0.0.1",
        )
    if not loopback and urlsplit(public).scheme != "https" and not insecure_http:
        raise ConfigurationError(
            f"serving {address or 'every address'} over plain http sends sign-ins and authorization "
            "codes in clear",
            hint=f"set {PUBLIC_URL_ENV} to the https URL of your TLS proxy, or pass --insecure-http",
        )


def serves_loopback_only(address: str) -> bool:
    """Whether every address `address` makes the server listen on is a loopback address."""
    if not address.strip():
        return False  # Tornado listens on every interface
    try:
        found = {info[4][0] for info in socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def _sign_sessions_with(secret: bytes) -> None:
    """Bokeh signs session ids (and their tokens) with the dashboard secret."""
    from bokeh.settings import settings

    configured = os.environ.get(BOKEH_SECRET_ENV)
    if configured is not None and configured.encode() != secret:
        raise ConfigurationError(
            f"{BOKEH_SECRET_ENV} is set to another secret than the dashboard's",
            hint="unset it: `switchboard serve` gives Bokeh the dashboard secret itself",
        )
    settings.secret_key.set_value(secret.decode())
    settings.sign_sessions.set_value(True)
