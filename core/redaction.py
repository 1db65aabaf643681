"""Redaction and fingerprints: what may be shown or stored about a secret.

A fingerprint is the first 8 hex digits of SHA-256 — enough for an operator to tell two credentials
apart in the audit log, useless for recovering the secret.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(
    r"(pass(word|phrase)?|secret|token|api[-_]?key|apikey|auth(orization)?|cookie|session|credential|"
    r"private[-_]?key|code[-_]?verifier)",
    re.IGNORECASE,
)
_MAX_STRING = 200
_MAX_DEPTH = 8


def fingerprint(secret: str | None) -> str | None:
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def redact_arguments(value: Any, *, depth: int = 0) -> Any:
    """A copy of tool-call arguments fit for the audit log: values under secret-looking keys are
    replaced, long strings truncated, deep nesting cut off."""
    if depth >= _MAX_DEPTH:
        return "<nested>"
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_NAME.search(str(key)) else redact_arguments(item, depth=depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_arguments(item, depth=depth + 1) for item in value[:50]]
    if isinstance(value, str) and len(value) > _MAX_STRING:
        return value[:_MAX_STRING] + f"… ({len(value)} chars)"
    return value
