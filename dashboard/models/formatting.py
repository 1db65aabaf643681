"""Human-readable renderings of the services' timestamps and lists."""

from __future__ import annotations

import time
from datetime import datetime

NEVER = "—"


def format_time(epoch: float | None) -> str:
    """Local time to the second, or an em dash for 'never'."""
    if epoch is None:
        return NEVER
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def format_expiry(epoch: float | None, now: float | None = None) -> str:
    """'in 59 min' / 'expired 3 min ago' / 'no expiry'."""
    if epoch is None:
        return "no expiry"
    remaining = epoch - (time.time() if now is None else now)
    span = _span(abs(remaining))
    return f"in {span}" if remaining >= 0 else f"expired {span} ago"


def format_scopes(scopes: tuple[str, ...] | list[str] | None) -> str:
    return " ".join(scopes) if scopes else NEVER


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"
