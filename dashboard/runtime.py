"""Process-wide dashboard state: the one `Switchboard` services instance, and each session's view of it.

Every Panel session and the OAuth callback route run on the same Tornado event loop, so they share
one services instance (and its HTTP pool). `switchboard serve` creates it before serving, so opening
the store (migrations, key file) never happens inside a request on the event loop. The public URL,
the redirect URI and the OAuth route paths come from `core/public_url.py`, which the services read
as well.

Each page session acts for its signed-in operator: `act_for_session(principal)` binds the session's
document to `service().acting_as(principal)`, and inside that session `service()` returns that view,
so every model's calls carry the operator's role and name. Once the session's sign-in ends
(`end_session`: signed out elsewhere, expired), `service()` in it refuses with `SignInError`. When serving, the shared instance itself
acts as a viewer named "dashboard" — a code path that missed the session's view can read, never
change (fail closed). Outside a server (notebooks, tests) it is the local admin, as the CLI.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from core.errors import SignInError
from core.roles import Principal, Role
from core.services import Switchboard

DEFAULT_PORT = 5006
SERVING_PRINCIPAL = Principal("dashboard", Role.VIEWER)

_service: Switchboard | None = None
_service_lock = threading.Lock()
_sessions: weakref.WeakKeyDictionary[Any, Switchboard | None] = weakref.WeakKeyDictionary()

__all__ = ["DEFAULT_PORT", "act_for_session", "end_session", "open_for_serving", "service"]


def service() -> Switchboard:
    """The services for the current Panel session's operator; outside a session the shared instance,
    opened on the store named by SWITCHBOARD_STORE (or the default)."""
    document = _current_document()
    if document is None or document not in _sessions:
        return _shared()
    view = _sessions[document]
    if view is None:
        raise SignInError("this dashboard session has ended (signed out or expired)", hint="sign in again")
    return view


def open_for_serving() -> Switchboard:
    """Open the shared instance for a dashboard server: acting as a viewer unless a session says who."""
    global _service
    with _service_lock:
        if _service is None:
            _service = Switchboard.open(principal=SERVING_PRINCIPAL)
        return _service


def act_for_session(principal: Principal) -> Switchboard:
    """Bind the current Panel session to `principal`; returns its services."""
    document = _current_document()
    if document is None:
        raise RuntimeError("act_for_session runs while a Panel session is being built")
    view = _sessions[document] = _shared().acting_as(principal)
    return view


def end_session(document: Any) -> None:
    """The session of `document` is no longer signed in: its services refuse from now on."""
    _sessions[document] = None


def _shared() -> Switchboard:
    global _service
    with _service_lock:
        if _service is None:
            _service = Switchboard.open()
        return _service


def _current_document() -> Any:
    import sys

    if "panel" not in sys.modules:  # not in a dashboard process: no session to look up
        return None
    import panel as pn

    return pn.state.curdoc
