"""How operators sign in to the dashboard, from the environment (`switchboard serve --auth` sets the
mode; the rest is configuration, so a plain `panel serve` reads the same).

- `SWITCHBOARD_AUTH`: `token` (default), `oidc`, `basic` or `none`.
- `token`: `SWITCHBOARD_LOGIN_TOKEN`, or a random token for this start; one local admin.
- `oidc`: `SWITCHBOARD_OIDC_ISSUER`, `SWITCHBOARD_OIDC_CLIENT_ID`, the client secret from
  `SWITCHBOARD_OIDC_CLIENT_SECRET_FILE` or `SWITCHBOARD_OIDC_CLIENT_SECRET` (never argv),
  `SWITCHBOARD_OIDC_SCOPES` (default `openid email profile`), `SWITCHBOARD_OIDC_ROLE_CLAIM` (default
  `groups`). Roles: `SWITCHBOARD_OIDC_ADMINS`, `…_OPERATORS`, `…_VIEWERS`, each a comma-separated
  list of values of the role claim (groups) or of users (email or subject) — the allow-list; a user
  in none of them is refused. With no list at all, the claim's values are role names themselves.
- `basic`: operators kept in the store (`switchboard operator add`).
- `none`: one local admin without signing in; loopback only.
- `SWITCHBOARD_SESSION_HOURS`: how long a sign-in lasts (default 12).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from core.roles import ROLES, Role

MODES = ("token", "oidc", "basic", "none")
AUTH_ENV = "SWITCHBOARD_AUTH"
LOGIN_TOKEN_ENV = "SWITCHBOARD_LOGIN_TOKEN"
SESSION_HOURS_ENV = "SWITCHBOARD_SESSION_HOURS"
OIDC_ISSUER_ENV = "SWITCHBOARD_OIDC_ISSUER"
OIDC_CLIENT_ID_ENV = "SWITCHBOARD_OIDC_CLIENT_ID"
OIDC_CLIENT_SECRET_ENV = "SWITCHBOARD_OIDC_CLIENT_SECRET"
OIDC_CLIENT_SECRET_FILE_ENV = "SWITCHBOARD_OIDC_CLIENT_SECRET_FILE"
OIDC_SCOPES_ENV = "SWITCHBOARD_OIDC_SCOPES"
OIDC_ROLE_CLAIM_ENV = "SWITCHBOARD_OIDC_ROLE_CLAIM"
OIDC_ROLE_ENVS = {
    Role.ADMIN: "SWITCHBOARD_OIDC_ADMINS",
    Role.OPERATOR: "SWITCHBOARD_OIDC_OPERATORS",
    Role.VIEWER: "SWITCHBOARD_OIDC_VIEWERS",
}
LOCAL_OPERATOR = "local"  # who `token` and `none` sign in


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    role_claim: str = "groups"
    members: Mapping[Role, frozenset[str]] = field(default_factory=dict)

    def role_of(self, claims: Mapping[str, Any]) -> Role | None:
        """The highest role the ID token's claims earn, or None (not allowed in)."""
        values = _claim_values(claims.get(self.role_claim))
        if not any(self.members.values()):
            earned = [r for r in ROLES if r.value in values]
        else:
            user = {str(claims[k]) for k in ("email", "sub") if claims.get(k)}
            earned = [r for r in ROLES if self.members.get(r, frozenset()) & (values | user)]
        return max(earned, key=lambda r: r.rank) if earned else None


@dataclass(frozen=True)
class SignInSettings:
    mode: str = "token"
    login_token: str | None = field(default=None, repr=False)
    oidc: OidcSettings | None = None
    session_hours: float = 12.0


def load_signin_settings(environ: Mapping[str, str] | None = None) -> SignInSettings:
    """The sign-in configuration; a token-mode start without `SWITCHBOARD_LOGIN_TOKEN` gets a random
    token. Raises `ConfigurationError` naming what to set."""
    env = os.environ if environ is None else environ
    mode = env.get(AUTH_ENV, "").strip() or "token"
    if mode not in MODES:
        raise ConfigurationError(f"{AUTH_ENV}={mode!r} is not a sign-in mode", hint=f"use one of {MODES}")
    try:
        hours = float(env.get(SESSION_HOURS_ENV, "").strip() or 12)
    except ValueError:
        hours = 0
    if not 0 < hours <= 24 * 30:
        raise ConfigurationError(f"{SESSION_HOURS_ENV} must be a number of hours up to 720")
    token = None
    if mode == "token":
        token = env.get(LOGIN_TOKEN_ENV, "").strip() or secrets.token_urlsafe(32)
        if len(token) < 16:
            raise ConfigurationError(
                f"{LOGIN_TOKEN_ENV} is too short", hint="use at least 16 random characters"
            )
    oidc = _oidc_settings(env) if mode == "oidc" else None
    return SignInSettings(mode=mode, login_token=token, oidc=oidc, session_hours=hours)


def _oidc_settings(env: Mapping[str, str]) -> OidcSettings:
    issuer = env.get(OIDC_ISSUER_ENV, "").strip()
    client_id = env.get(OIDC_CLIENT_ID_ENV, "").strip()
    if not issuer or not client_id:
        raise ConfigurationError(
            "--auth oidc needs the identity provider",
            hint=f"set {OIDC_ISSUER_ENV} and {OIDC_CLIENT_ID_ENV} (and the client secret's file)",
        )
    scopes = tuple((env.get(OIDC_SCOPES_ENV, "") or "openid email profile").split())
    if "openid" not in scopes:
        scopes = ("openid", *scopes)
    members = {role: frozenset(_listed(env.get(name, ""))) for role, name in OIDC_ROLE_ENVS.items()}
    return OidcSettings(
        issuer=issuer,  # exactly as the provider names itself: discovery compares it verbatim
        client_id=client_id,
        client_secret=_client_secret(env),
        scopes=scopes,
        role_claim=env.get(OIDC_ROLE_CLAIM_ENV, "").strip() or "groups",
        members=members,
    )


def _client_secret(env: Mapping[str, str]) -> str | None:
    path = env.get(OIDC_CLIENT_SECRET_FILE_ENV, "").strip()
    if path:
        try:
            return Path(path).expanduser().read_text().strip() or None
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {OIDC_CLIENT_SECRET_FILE_ENV} ({path}): {exc.strerror}"
            ) from None
    return env.get(OIDC_CLIENT_SECRET_ENV, "").strip() or None


def _listed(value: str) -> Iterable[str]:
    return (item.strip() for item in value.split(",") if item.strip())


def _claim_values(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list | tuple):
        return {str(v) for v in value if isinstance(v, str | int)}
    return set()
