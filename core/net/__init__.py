"""Outbound HTTP for all of `core`: the network policy (SSRF guard), the shared pooled client, the
one translation of httpx2 failures, and URL checking and redaction.

    from core.net import NetworkPolicy, shared_http_client, redact_url

Names are loaded on first use, so the light modules (`urls`, `policy`) do not pull in httpx2 and
httpcore2 for callers that only check or show a URL. `core.net.client` installs the redaction of
the HTTP libraries' debug logs when it is first imported, before any client exists.

Modules: `client` (the pooled client, connect-time policy enforcement), `policy` (`NetworkPolicy`,
`SWITCHBOARD_ALLOW_HOSTS`), `addresses` (which IP addresses are public), `http` (`map_httpx_errors`,
`read_capped`), `urls` (`parse_http_url`, `redact_url`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:
    from core.net.client import aclose_shared_clients, create_http_client, shared_http_client
    from core.net.http import map_httpx_errors, read_capped
    from core.net.policy import ALLOW_HOSTS_ENV, NetworkPolicy, is_loopback_host
    from core.net.urls import HttpUrl, parse_http_url, redact_url

__all__ = [
    "ALLOW_HOSTS_ENV",
    "HttpUrl",
    "NetworkPolicy",
    "aclose_shared_clients",
    "create_http_client",
    "is_loopback_host",
    "map_httpx_errors",
    "parse_http_url",
    "read_capped",
    "redact_url",
    "shared_http_client",
]

_HOME = {
    "aclose_shared_clients": "client",
    "create_http_client": "client",
    "shared_http_client": "client",
    "map_httpx_errors": "http",
    "read_capped": "http",
    "ALLOW_HOSTS_ENV": "policy",
    "NetworkPolicy": "policy",
    "is_loopback_host": "policy",
    "HttpUrl": "urls",
    "parse_http_url": "urls",
    "redact_url": "urls",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOME)
