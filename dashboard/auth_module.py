"""Bokeh's auth module for the dashboard (`panel serve --auth-module dashboard/auth_module.py`, as
`switchboard serve` runs it): every page and the websocket need a signed-in operator.

Bokeh calls `get_user_async` before a page is rendered or a websocket is opened: without a valid
session cookie a page is redirected to `/login` (no HTML, so no session token, is ever sent) and
Panel answers the websocket handshake 403. The sign-in routes themselves are plugin routes
(`dashboard/plugins.py`), not behind this check.

Loading it (once, when the server starts) opens the services for serving and prints the sign-in URL
on stdout — in token mode the one line that holds the token, like Jupyter's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from core.roles import Principal
from dashboard import runtime, signin
from dashboard.hardening import protect

# Bokeh reads these names from this module: `login_url` must not be defined (get_login_url is).
logout_url = signin.LOGOUT_PATH

# The shared services act as a viewer unless a session says who (fail closed) — in a plain
# `panel serve` too, which loads this module but not `switchboard serve`'s start-up.
runtime.open_for_serving()

if signin.front_door().mode == "none":
    print(f"Switchboard dashboard: {signin.login_url()} (no sign-in: this machine only)", flush=True)
else:
    print(f"Switchboard dashboard: sign in at {signin.login_url()}", flush=True)


async def get_user_async(handler: Any) -> Principal | None:
    protect(handler)
    return await signin.principal_of_request(handler)


def get_login_url(handler: Any) -> str:
    return signin.LOGIN_PATH + "?" + urlencode({"next": handler.request.uri or "/"})
