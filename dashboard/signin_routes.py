"""The sign-in routes (plugin routes, not behind the auth module): `/login`, `/login/callback`,
`/logout`.

- token: `GET /login?token=…` (the URL `switchboard serve` prints) or the token pasted into the form.
- oidc: `GET /login` sends the browser to the identity provider, with a sealed cookie binding the
  state to this browser; `GET /login/callback` finishes (`core/signin/oidc.py`).
- basic: a user name and password form, checked against the operators in the store.
- none: nothing to do on loopback; elsewhere refused.

Failed attempts are rate-limited per client address; the pages are static HTML (no script) with the
framing headers, `no-store` and `no-referrer` (the token must not leak from the address bar), and
the access log shows paths only (`_request_summary`), never a query holding a token or a code.
Forms carry a one-time value that must match a SameSite cookie, so no other site can sign a browser
in to an account of its choosing.
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any

from tornado.web import RequestHandler

from core.errors import SignInError, SwitchboardError
from core.roles import Principal
from dashboard import navigation
from dashboard.ratelimit import RateLimit
from dashboard.signin import (
    FRAMING_HEADERS,
    LOCAL_ADMIN,
    LOGIN_PATH,
    LOGOUT_PATH,
    arrived_on_loopback,
    front_door,
    sign_in,
    sign_out,
)

log = logging.getLogger(__name__)

FLOW_COOKIE = "switchboard_signin"  # oidc: the state this browser was given, and where it was going
FORM_COOKIE = "switchboard_form"
FLOW_SECONDS = 600
SIGN_IN_ATTEMPTS = RateLimit(attempts=10, seconds=60)  # per client address
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


class _FrontDoorHandler(RequestHandler):
    def set_default_headers(self) -> None:
        for name, value in FRAMING_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")

    def _request_summary(self) -> str:
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def next_path(self) -> str:
        return navigation.local_path(self.get_argument("next", None), default="/")

    def over_budget(self) -> bool:
        """Whether this client failed too often lately (successful sign-ins cost nothing: a team behind
        one address, or one person opening many tabs, is never locked out by signing in)."""
        if not SIGN_IN_ATTEMPTS.exhausted(self._client()):
            return False
        self.page(
            "Too many attempts", "<p>Too many failed sign-in attempts from here. Wait a minute.</p>", 429
        )
        return True

    def failed(self) -> None:
        SIGN_IN_ATTEMPTS.count(self._client())

    def _client(self) -> str:
        return self.request.remote_ip or "?"

    def page(self, title: str, body: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)} · Switchboard</title><style>{_STYLE}</style></head>"
            f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
        )

    def form(self, fields: str, button: str) -> str:
        """A POST form to /login carrying a one-time value that must match this browser's cookie."""
        value = secrets.token_urlsafe(24)
        self.set_cookie(FORM_COOKIE, value, httponly=True, samesite="Strict", path=LOGIN_PATH)
        return (
            f"<form method='post' action='{LOGIN_PATH}'>{fields}"
            f"<input type='hidden' name='form' value='{value}'>"
            f"<input type='hidden' name='next' value='{html.escape(self.next_path(), quote=True)}'>"
            f"<button type='submit'>{html.escape(button)}</button></form>"
        )

    def form_is_ours(self) -> bool:
        cookie, field = self.get_cookie(FORM_COOKIE), self.get_body_argument("form", "")
        self.clear_cookie(FORM_COOKIE, path=LOGIN_PATH)
        return bool(cookie and field) and secrets.compare_digest(cookie, field)

    def signed_in(self, principal: Principal, path: str, account: str = "") -> None:
        sign_in(self, principal, account)
        log.info("%s signed in (%s)", principal.name, principal.role)
        self.redirect(navigation.local_path(path, default="/"), status=303)  # the overview


class LoginHandler(_FrontDoorHandler):
    async def get(self) -> None:
        door = front_door()
        if door.mode == "token":
            token = self.get_argument("token", None)
            if token is None:
                self.page("Sign in", _TOKEN_HELP + self.form(_TOKEN_FIELD, "Sign in"))
            elif not self.over_budget():
                self._token_sign_in(token)
        elif door.mode == "oidc":
            await self._oidc_begin()
        elif door.mode == "basic":
            self.page("Sign in", self.form(_BASIC_FIELDS, "Sign in"))
        elif arrived_on_loopback(self.request):
            self.redirect(self.next_path(), status=303)
        else:
            self.page("Not served here", "<p>This dashboard signs in nobody off this machine.</p>", 403)

    async def post(self) -> None:
        door = front_door()
        if door.mode not in ("token", "basic") or not self.form_is_ours():
            self.page("Sign in", "<p>That form has expired. <a href='/login'>Sign in again</a>.</p>", 400)
            return
        if self.over_budget():
            return
        if door.mode == "token":
            self._token_sign_in(self.get_body_argument("token", ""))
            return
        name, password = self.get_body_argument("username", ""), self.get_body_argument("password", "")
        signed = await door.passwords.sign_in(name, password)
        if signed is None:
            self.failed()
            self.page(
                "Sign in",
                "<p class='bad'>Wrong user name or password.</p>" + self.form(_BASIC_FIELDS, "Sign in"),
                401,
            )
            return
        principal, account = signed
        self.signed_in(principal, self.get_body_argument("next", ""), account)

    def _token_sign_in(self, token: str) -> None:
        if not front_door().token_matches(token):
            self.failed()
            self.page(
                "Sign in",
                "<p class='bad'>That sign-in token is not valid (it changes at every start).</p>"
                + self.form(_TOKEN_FIELD, "Sign in"),
                403,
            )
            return
        self.signed_in(LOCAL_ADMIN, self.get_argument("next", ""))

    async def _oidc_begin(self) -> None:
        door = front_door()
        try:
            url, state = await door.oidc.begin(self.next_path())
        except SwitchboardError as exc:
            log.warning("OIDC sign-in could not start: %s", exc)
            self.page("Sign-in unavailable", f"<p class='bad'>{html.escape(str(exc))}</p>", 503)
            return
        sealed = door.sealer(FLOW_COOKIE).seal(FLOW_COOKIE, {"state": state}, lifetime=FLOW_SECONDS)
        # Lax: the identity provider's redirect back is a top-level navigation, which carries it.
        self.set_cookie(
            FLOW_COOKIE,
            sealed,
            httponly=True,
            samesite="Lax",
            path=LOGIN_PATH,
            secure=self.request.protocol == "https",
        )
        self.redirect(url, status=303)


class OidcCallbackHandler(_FrontDoorHandler):
    async def get(self) -> None:
        door = front_door()
        if door.mode != "oidc":
            self.page("Sign in", "<p>Nothing to finish here.</p>", 404)
            return
        if self.over_budget():
            return
        flow = door.sealer(FLOW_COOKIE).unseal(FLOW_COOKIE, self.get_cookie(FLOW_COOKIE))
        self.clear_cookie(FLOW_COOKIE, path=LOGIN_PATH)
        params = {
            k: v[0].decode("utf-8", "replace") for k, v in self.request.query_arguments.items() if len(v) == 1
        }
        try:
            principal, return_to = await door.oidc.finish(params, (flow or {}).get("state"))
        except SignInError as exc:
            log.warning("OIDC sign-in refused: %s", exc)
            self.failed()
            self.page(
                "Sign-in refused",
                f"<p class='bad'>{html.escape(str(exc))}</p><p><a href='{LOGIN_PATH}'>Try again</a></p>",
                403,
            )
            return
        self.signed_in(principal, return_to)


class LogoutHandler(_FrontDoorHandler):
    async def get(self) -> None:
        await sign_out(self)
        self.page(
            "Signed out", f"<p>Signed out of Switchboard. <a href='{LOGIN_PATH}'>Sign in again</a>.</p>"
        )


ROUTES: list[tuple[str, Any]] = [
    (LOGIN_PATH, LoginHandler),
    (LOGIN_PATH + "/callback", OidcCallbackHandler),
    (LOGOUT_PATH, LogoutHandler),
]

_TOKEN_HELP = (
    "<p>Open the sign-in link that <code>switchboard serve</code> printed when it started, "
    "or paste its token here.</p>"
)
_TOKEN_FIELD = "<label>Token <input name='token' type='password' autocomplete='off' required></label>"
_BASIC_FIELDS = (
    "<label>User name <input name='username' autocomplete='username' required></label>"
    "<label>Password <input name='password' type='password' autocomplete='current-password' required></label>"
)
_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f6f7f9;margin:0}"
    "main{max-width:420px;margin:10vh auto;background:#fff;padding:24px 32px;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}label{display:block;margin:12px 0}input{display:block;width:100%;"
    "padding:6px;margin-top:4px;box-sizing:border-box}button{margin-top:12px;padding:8px 20px}"
    ".bad{color:#b00020}"
)
