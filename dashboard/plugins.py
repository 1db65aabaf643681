"""Tornado routes served next to the Panel pages (`panel serve --plugins dashboard.plugins`).

The OAuth redirect lands here. Plugin routes are not behind Panel's login, so the handler trusts
nothing but the services' check of `state`; it redirects only to local paths and passes the outcome
to the page through a one-time flash key.
"""

from __future__ import annotations

import json
import logging

from tornado.web import RequestHandler

from core.models import AuthorizationOutcome
from core.public_url import CALLBACK_PATH, CLIENT_METADATA_PATH, client_metadata
from core.services import Switchboard
from dashboard import flash, navigation, runtime

log = logging.getLogger(__name__)


class OAuthCallbackHandler(RequestHandler):
    """`GET /oauth/callback?code=…&state=…` → complete the authorization → back to where it began."""

    def set_default_headers(self) -> None:
        # The callback URL carries a one-time code: keep it out of Referer headers and caches.
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    async def get(self) -> None:
        self.redirect(await finish_authorization(runtime.service(), self.request.query_arguments), status=303)

    def _request_summary(self) -> str:
        # Tornado's access log line: the path only; the query holds the authorization code and state.
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"


async def finish_authorization(service: Switchboard, arguments: dict[str, list[bytes]]) -> str:
    """Complete the authorization the callback's query `arguments` answer; returns the local path to
    send the browser to, carrying the flash key of the outcome."""
    outcome = await _complete(service, arguments)
    key = await flash.put(
        service.store,
        flash.Flash(
            ok=outcome.ok, message=_message(outcome), connector=outcome.connector, agent=outcome.agent
        ),
    )
    return navigation.with_query(navigation.local_path(outcome.return_to), **{flash.FLASH_PARAM: key})


async def _complete(service: Switchboard, arguments: dict[str, list[bytes]]) -> AuthorizationOutcome:
    if any(len(values) != 1 for values in arguments.values()):
        # RFC 6749 §4.1.2: parameters must not repeat; a repeated `state` or `code` is not trusted.
        return AuthorizationOutcome(ok=False, message="The authorization response repeated a parameter.")
    params = {key: values[0].decode("utf-8", "replace") for key, values in arguments.items()}
    try:
        return await service.complete_authorization(params)
    except Exception:  # the operator gets a page, never a traceback; details go to the server log
        log.exception("completing an OAuth callback failed")
        return AuthorizationOutcome(
            ok=False, message="The authorization could not be completed; the server log has the details."
        )


class ClientMetadataHandler(RequestHandler):
    """`GET /oauth/client-metadata.json`: Switchboard's client ID metadata document, which an
    authorization server fetches instead of taking a registration (served only over https)."""

    async def get(self) -> None:
        document = client_metadata()
        if document is None:
            self.send_error(404)
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "max-age=3600")
        self.finish(json.dumps(document))


def _message(outcome: AuthorizationOutcome) -> str:
    if outcome.message:
        return outcome.message
    if not outcome.ok:
        return "The authorization failed."
    who = f" for {outcome.agent}" if outcome.agent else ""
    tools = f", {outcome.tools} tools synced" if outcome.tools is not None else ""
    return f"Connected {outcome.connector}{who}{tools}."


ROUTES = [(CALLBACK_PATH, OAuthCallbackHandler), (CLIENT_METADATA_PATH, ClientMetadataHandler)]
