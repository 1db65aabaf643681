"""Paginated list methods (`tools/list`, `resources/list`, `prompts/list`; T-20).

Cursors are opaque: sent back verbatim, the empty string included (a valid cursor in 2026-07-28). A
repeated cursor or more pages than `ClientLimits.max_pages` is a `PaginationError`. In the legacy
era cursors belong to their session: when the session is re-created mid-listing, the page fetcher
raises `SessionRenewed` and the listing starts over (the client decides how often).

A listing is bounded as a whole, not only per response: its total response bytes and its items are
capped (`ClientLimits.max_listing_bytes`, `max_listing_items`), and the client gives it a deadline
(`listing_deadline`); each raises `ListingLimitExceeded` naming the setting that raises the cap. Without
them, a server could answer 1,000 pages of 16 MiB each, every one kept until the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.config import LISTING_DEADLINE_ENV, LISTING_MAX_BYTES_ENV, LISTING_MAX_ITEMS_ENV
from core.errors import ListingLimitExceeded, PaginationError, ProtocolError
from core.mcp.session import Reply
from core.mcp.types import ClientLimits

__all__ = ["PageFetcher", "SessionRenewed", "collect_pages", "within_deadline"]

#: `await fetch(cursor)`: one page (`cursor` None for the first).
PageFetcher = Callable[[str | None], Awaitable[Reply]]


class SessionRenewed(Exception):
    """The session was re-created while a request that must not be replayed was in flight."""


async def collect_pages(
    fetch: PageFetcher, method: str, key: str, *, limits: ClientLimits, where: str
) -> list[dict[str, Any]]:
    """Every item of every page, in order."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor: str | None = None
    size = 0
    max_pages = limits.max_pages
    for _page in range(max_pages):
        reply = await fetch(cursor)
        size += reply.size
        if size > limits.max_listing_bytes:
            raise ListingLimitExceeded(
                f"{method}: the listing from {where} exceeded {limits.max_listing_bytes} bytes",
                setting=LISTING_MAX_BYTES_ENV,
                limit=limits.max_listing_bytes,
            )
        result = reply.result
        page = result.get(key, [])
        if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
            raise ProtocolError(f"{method}: {key!r} is not a list of objects")
        items.extend(page)
        if len(items) > limits.max_listing_items:
            raise ListingLimitExceeded(
                f"{method}: {where} listed more than {limits.max_listing_items} {key}",
                setting=LISTING_MAX_ITEMS_ENV,
                limit=limits.max_listing_items,
            )
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


async def within_deadline(
    listing: Coroutine[Any, Any, list[dict[str, Any]]], deadline: float, what: str
) -> list[dict[str, Any]]:
    """`await listing`, or `ListingLimitExceeded` after `deadline` seconds (`what`: "tools/list: listing URL")."""
    try:
        async with asyncio.timeout(deadline):
            return await listing
    except TimeoutError:
        raise ListingLimitExceeded(
            f"{what} took longer than {deadline:g}s", setting=LISTING_DEADLINE_ENV, limit=deadline
        ) from None
