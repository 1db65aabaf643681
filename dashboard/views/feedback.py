"""Telling the operator how an action went: notifications, never a traceback.

Every button handler runs its work through `attempt`, so a `SwitchboardError` becomes a readable
notification and anything unexpected a generic one (details only in the server log) — the session and
the server process carry on either way. Notification text is HTML-escaped: messages can quote what a
remote server said.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

import panel as pn

from core.errors import SwitchboardError

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong; the server log has the details."
_ERROR_DURATION_MS = 10000
# Notyf's own green and red are too light for white text (2.3:1 and 3.9:1; WCAG AA asks 4.5:1).
NOTIFICATION_TYPES = [
    {"type": "success", "background": "#146c43"},
    {"type": "error", "background": "#b02a37"},
]


def readable_notifications() -> None:
    """Give this session's notifications colours that white text can be read on."""
    if pn.state.notifications is not None:
        pn.state.notifications.types = [*pn.state.notifications.types, *NOTIFICATION_TYPES]


async def attempt[T](work: Awaitable[T], *, success: str | Callable[[T], str] | None = None) -> T | None:
    """Await `work`; notify `success` (text, or made from the result) or the failure. None on failure."""
    try:
        result = await work
    except SwitchboardError as exc:
        notify_error(str(exc))
        return None
    except Exception:
        log.exception("dashboard action failed")
        notify_error(UNEXPECTED)
        return None
    if success is not None:
        notify_success(success(result) if callable(success) else success)
    return result


def notify_success(message: str) -> None:
    if pn.state.notifications is not None:
        pn.state.notifications.success(html.escape(message))


def notify_error(message: str) -> None:
    if pn.state.notifications is not None:
        pn.state.notifications.error(html.escape(message), duration=_ERROR_DURATION_MS)


def handle_unexpected(exc: Exception) -> None:
    """Panel's `exception_handler`: the last line of defence for a callback that raised anyway."""
    log.error("unhandled dashboard callback error", exc_info=exc)
    notify_error(str(exc) if isinstance(exc, SwitchboardError) else UNEXPECTED)
