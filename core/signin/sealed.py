"""Small values sealed for the browser to keep: AES-256-GCM, so a sealed value can be neither read
nor altered nor moved to another name, and each carries its own expiry.

The sign-in cookies use it: the session (who is signed in, with which role) and, during an OpenID
Connect sign-in, the state that binds the identity provider's answer to the browser that asked.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, name: str, payload: dict[str, Any], *, lifetime: float) -> str:
        """`payload` sealed under `name` (what it is, e.g. the cookie's name), valid for `lifetime` s."""
        body = json.dumps({"exp": time.time() + lifetime, "v": payload}, separators=(",", ":")).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, body, name.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def unseal(self, name: str, value: str | None) -> dict[str, Any] | None:
        """The payload sealed under `name`, or None when it is missing, altered, foreign or expired."""
        if not value or len(value) > 4096:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = json.loads(self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], name.encode()))
        except (ValueError, InvalidTag):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("v"), dict):
            return None
        if not isinstance(body.get("exp"), int | float) or body["exp"] < time.time():
            return None
        return body["v"]
