"""Outbound HTTP for all of `core`: the network policy (SSRF guard) and the shared pooled client."""

from typing import TYPE_CHECKING

from core.net.policy import ALLOW_HOSTS_ENV, NetworkPolicy, is_loopback_host
from core.redaction import install_http_log_redaction

if TYPE_CHECKING:
    from core.net.client import aclose_shared_clients, create_http_client, shared_http_client

# httpcore's DEBUG trace prints raw response headers (session ids, cookies, redirect queries).
install_http_log_redaction()

# The client names load on first use (PEP 562): the policy alone must not import httpx2, so a CLI
# command that never goes on the network does not pay for it.
_CLIENT_EXPORTS = ("aclose_shared_clients", "create_http_client", "shared_http_client")

__all__ = [
    "ALLOW_HOSTS_ENV",
    "NetworkPolicy",
    "aclose_shared_clients",
    "create_http_client",
    "is_loopback_host",
    "shared_http_client",
]


def __getattr__(name: str) -> object:
    if name not in _CLIENT_EXPORTS:
        raise AttributeError(f"module 'core.net' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module("core.net.client"), name)
    globals()[name] = value
    return value
