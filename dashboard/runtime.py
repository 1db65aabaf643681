"""Process-wide dashboard state: the one `Switchboard` services instance and the public origin.

Every Panel session and the OAuth callback route run on the same Tornado event loop, so they share
one services instance (and its HTTP pool). It is created on first use, inside that loop.
"""

from __future__ import annotations

import os
import threading

from core.services import Switchboard

PUBLIC_URL_ENV = "SWITCHBOARD_PUBLIC_URL"
DEFAULT_PORT = 5006
CALLBACK_PATH = "/oauth/callback"

_service: Switchboard | None = None
_service_lock = threading.Lock()


def service() -> Switchboard:
    """The shared services instance, opened on the store named by SWITCHBOARD_STORE (or the default)."""
    global _service
    with _service_lock:
        if _service is None:
            _service = Switchboard.open()
        return _service


def public_origin() -> str:
    """Where browsers reach the dashboard; never derived from a request's Host header."""
    configured = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    return configured or f"http://localhost:{DEFAULT_PORT}"


def redirect_uri() -> str:
    return public_origin() + CALLBACK_PATH
