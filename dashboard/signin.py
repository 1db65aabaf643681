"""The dashboard's front door: who is signed in, from a sealed session cookie, in every sign-in mode.

Process-wide, like the services (`front_door()`): the sign-in settings (`core/signin/settings.py`),
the dashboard secret (`core/signin/secret.py`) and, in `oidc` mode, the OpenID Connect client.

- Every page and the websocket ask `principal_of_request` (through `dashboard/auth_module.py`, the
  Bokeh auth module): a valid session cookie or nothing — Bokeh then redirects a page to `/login`
  and Panel refuses the websocket with 403, before any session (or session token) exists.
- A page's session asks `session_principal()`: the same cookie, as the signed session token
  carried it, and only in a session whose id was signed with the dashboard secret (so a server
  started without signed sessions — a bare `panel serve` — shows nothing but sign-in).
- The sign-in routes (`dashboard/signin_routes.py`) set the cookie: `sign_in(handler, principal)`.
- `basic` binds a cookie to the operator's account as it was (role, password hash): each request
  asks the store whether it still is (`core/signin/basic.py`), so removing an operator, changing
  their role or password ends their sessions.
- Each sign-in is a session with a random id in its cookie; signing out records the id as ended in
  the store (`operators.end_session`), which every request asks, on whichever replica.
- Open pages are checked too, all together every few seconds (`dashboard/session_watch.py`).

`none` signs in one local admin without a cookie, but only for requests that reached a loopback
address (the server refuses to start otherwise; this covers a bare `panel serve --address 0.0.0.0`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigurationError
from core.roles import Principal, Role
from core.signin.sealed import Sealer
from core.signin.secret import dashboard_secret, derive_key
from core.signin.settings import LOCAL_OPERATOR, SignInSettings, load_signin_settings

SESSION_COOKIE = "switchboard_session"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
LOCAL_ADMIN = Principal(LOCAL_OPERATOR, Role.ADMIN)

# On every response (dashboard/hardening.py): no page of the dashboard may be framed.
FRAMING_HEADERS = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, basic mode's account binding, and the random id sign-out ends."""

    principal: Principal
    account: str
    id: str


@dataclass
class FrontDoor:
    settings: SignInSettings
    secret: bytes
    oidc: Any = None  # core.signin.oidc.OidcSignIn in oidc mode
    passwords: Any = None  # core.signin.basic.PasswordSignIn in basic mode

    def __post_init__(self) -> None:
        self._sealer = Sealer(derive_key(self.secret, "session-cookie"))

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def session_seconds(self) -> float:
        return self.settings.session_hours * 3600

    def seal_session(self, principal: Principal, account: str = "") -> str:
        """The session cookie's value; `account`: what the session depends on (basic mode's binding)."""
        payload = {
            "n": principal.name,
            "r": principal.role.value,
            "m": self.mode,
            "b": self._binding(),
            "a": account,
            "s": secrets.token_urlsafe(16),
        }
        return self._sealer.seal(SESSION_COOKIE, payload, lifetime=self.session_seconds)

    def session_of_cookie(self, value: str | None) -> Session | None:
        """The cookie's session, if it is a valid cookie of this start and mode (not asking the
        store whether it was signed out since: `session_is_live`)."""
        payload = self._sealer.unseal(SESSION_COOKIE, value)
        if payload is None or payload.get("m") != self.mode or payload.get("b") != self._binding():
            return None  # another mode's cookie, or a login token since replaced
        try:
            principal = Principal(str(payload["n"]), Role(payload["r"]))
            return Session(principal, str(payload.get("a", "")), str(payload["s"]))
        except (KeyError, ValueError):
            return None

    async def session_is_live(self, session: Session) -> bool:
        """Not signed out, and in basic mode still the account it was bound to (both: the store)."""
        if await asyncio.to_thread(self.ended_among, [session.id]):
            return False
        return self.passwords is None or await self.passwords.still_signed_in(
            session.principal, session.account
        )

    def ended_among(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions were signed out (one read of the store)."""
        return _operators().ended_sessions(session_ids)

    def end(self, session: Session) -> None:
        """Sign `session` out everywhere: refused from now until its cookie would have expired."""
        _operators().end_session(session.id, time.time() + self.session_seconds)

    def token_matches(self, candidate: str | None) -> bool:
        import hmac

        token = self.settings.login_token
        return bool(token and candidate) and hmac.compare_digest(str(candidate).encode(), token.encode())

    def sealer(self, purpose: str) -> Sealer:
        """A sealer for another short-lived browser value (the OIDC flow cookie, form tokens)."""
        return Sealer(derive_key(self.secret, purpose))

    def _binding(self) -> str:
        # Token mode: a cookie outlives neither the login token it was given for (a new random token
        # at each start signs everyone out), nor — in every mode — the secret.
        token = self.settings.login_token or ""
        return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


_door: FrontDoor | None = None
_door_lock = threading.Lock()


def front_door() -> FrontDoor:
    """The process's front door, configured from the environment on first use."""
    global _door
    with _door_lock:
        if _door is None:
            _door = _open(load_signin_settings())
        return _door


def _open(settings: SignInSettings) -> FrontDoor:
    door = FrontDoor(settings, dashboard_secret())
    if settings.mode == "oidc" and settings.oidc is not None:
        from core.signin.oidc import OidcSignIn

        door.oidc = OidcSignIn(settings.oidc, oidc_redirect_uri())
    if settings.mode == "basic":
        door.passwords = _password_sign_in()
    return door


def _password_sign_in() -> Any:
    """Basic mode's sign-in against the operators in the store; refused when there is none yet."""
    from core.signin.basic import PasswordSignIn

    operators = _operators()
    if not operators.list():
        raise ConfigurationError(
            "--auth basic, but no operator may sign in yet",
            hint="add one: switchboard operator add NAME --role admin --password-stdin",
        )
    return PasswordSignIn(operators)


def _operators() -> Any:
    """The store's sign-in repository (operators, ended sessions), through the serving services."""
    from dashboard import runtime

    return runtime.open_for_serving().store.operators


def oidc_redirect_uri() -> str:
    from core.public_url import public_url

    return public_url() + LOGIN_PATH + "/callback"


def login_url() -> str:
    """Where the printed sign-in URL points (token mode: with the token)."""
    from urllib.parse import urlencode

    from core.public_url import public_url

    door = front_door()
    query = "?" + urlencode({"token": door.settings.login_token}) if door.mode == "token" else ""
    return public_url() + LOGIN_PATH + query


async def principal_of_request(handler: Any) -> Principal | None:
    """Who sent this Tornado request: its session cookie (in basic mode: of an account that is still
    as it was), or the local admin in `none` mode on loopback."""
    door = front_door()
    if door.mode == "none":
        return LOCAL_ADMIN if arrived_on_loopback(handler.request) else None
    session = door.session_of_cookie(handler.get_cookie(SESSION_COOKIE))
    if session is None or not await door.session_is_live(session):
        return None
    return session.principal


def arrived_on_loopback(request: Any) -> bool:
    """Whether the request reached this server on a loopback address (not: claims to come from one)."""
    stream = getattr(request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is None:
        return False
    try:
        return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except (OSError, ValueError):
        return False


def sign_in(handler: Any, principal: Principal, account: str = "") -> None:
    """Give the browser behind `handler` a session for `principal` (`account`: basic mode's binding)."""
    door = front_door()
    handler.set_cookie(
        SESSION_COOKIE,
        door.seal_session(principal, account),
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
        path="/",
        expires_days=door.session_seconds / 86400,
    )


async def sign_out(handler: Any) -> None:
    """End the browser's session everywhere (not only forget its cookie here); the store write runs
    in a worker thread, like every other store call from a request."""
    door = front_door()
    session = door.session_of_cookie(handler.get_cookie(SESSION_COOKIE))
    if session is not None:
        await asyncio.to_thread(door.end, session)
    handler.clear_cookie(SESSION_COOKIE, path="/")


def session_principal() -> Principal | None:
    """Who this Panel session belongs to, or None: then the page shows only the way to sign in."""
    import panel as pn

    door = front_door()
    document = pn.state.curdoc
    context = getattr(document, "session_context", None)
    if context is None or not _signed_with_secret(context.id, door.secret):
        return None
    if door.mode == "none":
        return LOCAL_ADMIN  # only reachable on loopback: the websocket itself was refused otherwise
    session = door.session_of_cookie(pn.state.cookies.get(SESSION_COOKIE))
    return session.principal if session else None


def _signed_with_secret(session_id: str, secret: bytes) -> bool:
    from bokeh.util.token import check_session_id_signature

    return check_session_id_signature(session_id, secret_key=secret, signed=True)
