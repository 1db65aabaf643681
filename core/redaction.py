"""Redaction and fingerprints: what may be shown or stored about a secret.

A fingerprint is the first 8 hex digits of SHA-256 — enough for an operator to tell two credentials
apart in the audit log, useless for recovering the secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
# A key is secret-looking when one of its words is: `access_token`, `apiKey`, `X-Session-Id` are;
# `max_tokens`, `keyword`, `author` are not (whole words, not substrings).
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pin",
        "secret",
        "token",
        "apikey",
        "key",
        "auth",
        "authorization",
        "bearer",
        "jwt",
        "cookie",
        "session",
        "sessionid",
        "credential",
        "credentials",
        "privatekey",
        "verifier",
        "signature",
    }
)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MAX_STRING = 200
_MAX_DEPTH = 8


def fingerprint(secret: str | None) -> str | None:
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def is_secret_name(name: object) -> bool:
    words = [w.lower() for w in _WORD.findall(str(name))]
    joined = {"".join(words[i : i + 2]) for i in range(len(words))}  # api_key -> apikey, private_key -> ...
    return any(w in _SECRET_WORDS for w in words) or any(j in _SECRET_WORDS for j in joined)


def redact_arguments(value: Any, *, depth: int = 0) -> Any:
    """A copy of tool-call arguments fit for the audit log: values under secret-looking keys are
    replaced, long strings truncated, deep nesting cut off."""
    if depth >= _MAX_DEPTH:
        return "<nested>"
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if is_secret_name(key) else redact_arguments(item, depth=depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_arguments(item, depth=depth + 1) for item in value[:50]]
    if isinstance(value, str) and len(value) > _MAX_STRING:
        return value[:_MAX_STRING] + f"… ({len(value)} chars)"
    return value


# --- HTTP library debug logs -----------------------------------------------------------------------

# httpcore's DEBUG trace prints every response's raw headers, e.g.
# "receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', [(b'mcp-session-id', b'…')])".
# Header values that are secrets or may carry one (a redirect's query: an authorization code)
# are masked before any handler sees the record.
_SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "mcp-session-id",
    "x-api-key",
    "api-key",
)
# Python prints a bytes value as b'...', or as b"..." when it contains a single quote.
_BYTES = rb"""(?:b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*")"""
_HEADER_PAIR = re.compile(
    rb"\(b'(" + "|".join(_SECRET_HEADERS).encode() + rb")', " + _BYTES + rb"\)", re.IGNORECASE
)
_LOCATION_QUERY = re.compile(
    rb"""(\(b'location', b['"][^'"?]*)\?""" + rb"""(?:[^'"\\]|\\.)*['"]\)""", re.IGNORECASE
)
# httpx2 logs each request's full URL at INFO; a query can carry a state, a code or a key.
_URL_QUERY = re.compile(rb"(https?://[^\s?\"']*)\?[^\s\"']*")
_HTTP_LOGGERS = (
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.connection",
    "httpcore2.proxy",
    "httpcore2.socks",
    "httpx2",
)


class HttpLogRedactor:
    """A `logging` filter for the HTTP libraries' loggers; see `install_http_log_redaction`."""

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        if "b'" not in message and 'b"' not in message and "?" not in message:
            return True
        data = message.encode("utf-8", "surrogateescape")
        masked = _HEADER_PAIR.sub(lambda m: b"(b'" + m.group(1) + b"', b'" + REDACTED.encode() + b"')", data)
        masked = _LOCATION_QUERY.sub(lambda m: m.group(1) + b"?" + REDACTED.encode() + b"')", masked)
        masked = _URL_QUERY.sub(lambda m: m.group(1) + b"?" + REDACTED.encode(), masked)
        if masked != data:
            record.msg, record.args = masked.decode("utf-8", "surrogateescape"), None
        return True


_redactor = HttpLogRedactor()


def install_http_log_redaction() -> None:
    """Attach the redacting filter to the HTTP libraries' loggers (idempotent)."""
    import logging

    for name in _HTTP_LOGGERS:
        log = logging.getLogger(name)
        if _redactor not in log.filters:
            log.addFilter(_redactor)
