"""The dashboard's secret: signs Bokeh session ids and seals the sign-in cookies.

`SWITCHBOARD_DASHBOARD_SECRET` (at least 32 characters) or, by default, a random secret created on
first use in `dashboard.secret` beside the store's key file (mode 0600). It is kept across restarts
so a restart signs nobody out; deleting the file signs everybody out. Each use gets its own key,
derived with HMAC-SHA256 from the secret and the use's name, so a key for one never works for another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from core.config import ensure_private_dir, load_settings, restrict_file
from core.errors import ConfigurationError

SECRET_ENV = "SWITCHBOARD_DASHBOARD_SECRET"
SECRET_FILE_NAME = "dashboard.secret"
MIN_SECRET_LENGTH = 32


def dashboard_secret(environ: Mapping[str, str] | None = None) -> bytes:
    """The configured secret, creating the secret file on first use."""
    env = os.environ if environ is None else environ
    configured = env.get(SECRET_ENV, "").strip()
    if configured:
        if len(configured) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"{SECRET_ENV} is too short",
                hint=f"use at least {MIN_SECRET_LENGTH} random characters, e.g. `openssl rand -hex 32`",
            )
        return configured.encode()
    return _secret_file(load_settings(env).key_file.with_name(SECRET_FILE_NAME))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (e.g. "bokeh-session-ids", "session-cookie")."""
    return hmac.new(secret, f"switchboard dashboard {purpose}".encode(), hashlib.sha256).digest()


def _secret_file(path: Path) -> bytes:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        ensure_private_dir(path.parent)
        value = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
    restrict_file(path)
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{path} holds a secret that is too short", hint="delete it; a new one is created"
        )
    return value.encode()
