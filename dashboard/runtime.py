"""Process-wide dashboard state: the one `Switchboard` services instance and the public origin.

Every Panel session and the OAuth callback route run on the same Tornado event loop, so they share
one services instance (and its HTTP pool). `switchboard serve` creates it before serving, so opening
the store (migrations, key file) never happens inside a request on the event loop.
"""

from __future__ import annotations

import os
import threading

from core.services import (
    CALLBACK_PATH,
    DEFAULT_PUBLIC_URL,
    PUBLIC_URL_ENV,
    Switchboard,
    dashboard_redirect_uri,
)

DEFAULT_PORT = 5006

_service: Switchboard | None = None
_service_lock = threading.Lock()

__all__ = ["CALLBACK_PATH", "DEFAULT_PORT", "PUBLIC_URL_ENV", "public_origin", "redirect_uri", "service"]


def service() -> Switchboard:
    """The shared services instance, opened on the store named by SWITCHBOARD_STORE (or the default)."""
    global _service
    with _service_lock:
        if _service is None:
            _service = Switchboard.open()
        return _service


def public_origin() -> str:
    """Where browsers reach the dashboard (SWITCHBOARD_PUBLIC_URL); never a request's Host header."""
    return os.environ.get(PUBLIC_URL_ENV, DEFAULT_PUBLIC_URL).rstrip("/")


def redirect_uri() -> str:
    """The OAuth redirect_uri: `<public origin>/oauth/callback`, as the services compute it."""
    return dashboard_redirect_uri()
