"""Local paths the dashboard may send a browser to, and the routes of its pages."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

CONNECTORS_PATH = "/connectors"


def local_path(candidate: str | None, default: str = CONNECTORS_PATH) -> str:
    """`candidate` when it is a path on this server, else `default`.

    The OAuth callback redirects to a stored `return_to`; accepting only local paths keeps it from
    ever becoming an open redirector (`//evil.example`, `https://…`, `/\\evil.example` all fall back).
    """
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return default
    if any(ord(ch) < 0x21 or ch in "\\\x7f" for ch in candidate):
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return default
    return candidate


def with_query(path: str, **params: str) -> str:
    """`path` with `params` added to (or replacing those in) its query string."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def agent_path(agent: str) -> str:
    return f"/agent?name={quote(agent, safe='')}"
