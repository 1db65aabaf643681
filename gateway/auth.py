"""Who is calling: `Authorization: Bearer <agent token>` of the agent whose path is called.

A missing, unknown, expired or revoked token, or another agent's token, is the same 401 with
`WWW-Authenticate: Bearer` (RFC 6750 §3), so a caller learns nothing about which agents or tokens
exist. The token is looked up by its SHA-256 in the catalog's memory: no store access per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.access.tokens import hash_token

REALM = "switchboard-gateway"


@dataclass(frozen=True)
class Identity:
    agent_id: str
    agent: str
    token_id: str
    token_hash: str


def authenticate(catalog: Any, agent: str, authorization: str | None) -> Identity | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    token_hash = hash_token(token)
    found = catalog.tokens.get(token_hash)
    if found is None or (found.expires_at is not None and found.expires_at <= time.time()):
        return None
    agent_id = catalog.agent_ids.get(agent)
    if agent_id is None or found.agent_id != agent_id:
        return None
    return Identity(agent_id, agent, found.id, token_hash)


def challenge_headers(scope: dict[str, Any]) -> tuple[tuple[bytes, bytes], ...]:
    presented = any(key == b"authorization" for key, _ in scope["headers"])
    value = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if presented else "")
    return ((b"www-authenticate", value.encode()),)
