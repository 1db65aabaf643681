"""Process-wide dashboard state: the one `Switchboard` services instance.

Every Panel session and the OAuth callback route run on the same Tornado event loop, so they share
one services instance (and its HTTP pool). `switchboard serve` creates it before serving, so opening
the store (migrations, key file) never happens inside a request on the event loop. The public URL,
the redirect URI and the OAuth route paths come from `core/public_url.py`, which the services read
as well.
"""

from __future__ import annotations

import threading

from core.services import Switchboard

DEFAULT_PORT = 5006

_service: Switchboard | None = None
_service_lock = threading.Lock()

__all__ = ["DEFAULT_PORT", "service"]


def service() -> Switchboard:
    """The shared services instance, opened on the store named by SWITCHBOARD_STORE (or the default)."""
    global _service
    with _service_lock:
        if _service is None:
            _service = Switchboard.open()
        return _service
