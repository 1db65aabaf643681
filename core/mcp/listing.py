"""Paginated list methods (`tools/list`, `resources/list`, `prompts/list`; T-20).

Cursors are opaque: sent back verbatim, the empty string included (a valid cursor in 2026-07-28). A
repeated cursor or more pages than `ClientLimits.max_pages` is a `PaginationError`. In the legacy
era cursors belong to their session: when the session is re-created mid-listing, the page fetcher
raises `SessionRenewed` and the listing starts over (the client decides how often).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from core.errors import PaginationError, ProtocolError
from core.mcp.session import Reply

__all__ = ["PageFetcher", "SessionRenewed", "collect_pages"]

#: `await fetch(cursor)`: one page (`cursor` None for the first).
PageFetcher = Callable[[str | None], Awaitable[Reply]]


class SessionRenewed(Exception):
    """The session was re-created while a request that must not be replayed was in flight."""


async def collect_pages(
    fetch: PageFetcher, method: str, key: str, *, max_pages: int, where: str
) -> list[dict[str, Any]]:
    """Every item of every page, in order."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor: str | None = None
    for _page in range(max_pages):
        result = (await fetch(cursor)).result
        page = result.get(key, [])
        if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
            raise ProtocolError(f"{method}: {key!r} is not a list of objects")
        items.extend(page)
        next_cursor = result.get("nextCursor")
        if next_cursor is None:
            return items
        if not isinstance(next_cursor, str):
            raise ProtocolError(f"{method}: nextCursor is not a string")
        if next_cursor in seen:
            raise PaginationError(
                f"{method}: {where} repeated a pagination cursor",
                method=method,
                pages=len(seen) + 1,
                hint="the server's pagination loops; report it to its maintainers",
            )
        seen.add(next_cursor)
        cursor = next_cursor
    raise PaginationError(
        f"{method}: more than {max_pages} pages from {where}", method=method, pages=max_pages
    )
