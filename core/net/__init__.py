"""Outbound HTTP for all of `core`: the network policy (SSRF guard) and the shared pooled client."""

from core.net.client import aclose_shared_clients, create_http_client, shared_http_client
from core.net.policy import ALLOW_HOSTS_ENV, NetworkPolicy, is_loopback_host
from core.redaction import install_http_log_redaction

# httpcore's DEBUG trace prints raw response headers (session ids, cookies, redirect queries).
install_http_log_redaction()

__all__ = [
    "ALLOW_HOSTS_ENV",
    "NetworkPolicy",
    "aclose_shared_clients",
    "create_http_client",
    "is_loopback_host",
    "shared_http_client",
]
