"""Agent tokens: what an agent presents to the gateway as `Authorization: Bearer <token>`.

A token is 32 random bytes (256 bits) in base64url behind a `swb_` prefix (so secret scanners and
people recognise it). The store keeps only its SHA-256: with that much entropy a fast hash is as
good as a slow KDF (nothing to brute-force), and it lets a gateway find the token by hash in one
dictionary lookup. The plaintext exists once, in the `IssuedToken` handed to whoever created it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

TOKEN_PREFIX = "swb_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256 of its text)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(6)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only object that ever holds its plaintext (masked in `repr`)."""

    id: str
    agent: str
    label: str
    expires_at: float | None
    token: str = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "label": self.label,
            "expires_at": self.expires_at,
            "token": self.token,
        }
