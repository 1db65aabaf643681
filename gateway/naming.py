"""Gateway tool names: `<connector>__<tool>`, within MCP's tool-name rules (2025-11-25: 1-128
characters from `A-Z a-z 0-9 _ - .`).

The plain form is used when it is unambiguous: both names are made of allowed characters, the
connector name neither contains `__` nor ends with `_` (so the first `__` in the result always
splits it back into the same two names) and the result has at most 128 characters. Otherwise the
name is mangled: disallowed characters become `_`, the result is cut to 116 characters and
`__h` plus the first 8 hex digits of SHA-256 over "<connector>\\0<tool>" is appended. Both forms
depend only on the two names, never on what else the agent sees, so a name stays the same as long
as the connector and the tool keep theirs.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 128
SEPARATOR = "__"
_ALLOWED = re.compile(r"[A-Za-z0-9_.-]+")
_DISALLOWED = re.compile(r"[^A-Za-z0-9_.-]")
_DIGEST = 8


def gateway_name(connector: str, tool: str) -> str:
    plain = f"{connector}{SEPARATOR}{tool}"
    if (
        _ALLOWED.fullmatch(connector)
        and _ALLOWED.fullmatch(tool)
        and SEPARATOR not in connector
        and not connector.endswith("_")
        and len(plain) <= MAX_NAME
    ):
        return plain
    digest = hashlib.sha256(f"{connector}\0{tool}".encode()).hexdigest()[:_DIGEST]
    suffix = f"{SEPARATOR}h{digest}"
    return _DISALLOWED.sub("_", plain)[: MAX_NAME - len(suffix)] + suffix
