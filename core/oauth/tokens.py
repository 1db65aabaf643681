"""Token requests, token-response validation, and refresh with exactly one refresh per credential.

Refresh timing: a token is refreshed ahead of expiry once less than min(5 minutes, half its lifetime)
remains — 5 minutes for ordinary tokens, half the lifetime for short-lived ones, so a 2-minute token
is refreshed after one minute and not on every request. The absolute expiry is stored; a token
without `expires_in` never expires until the server answers 401.

Refresh races (requirements C-01..C-08): a refresh runs under an asyncio lock per (storage,
credential) — one coroutine refreshes, the others wait and then find the new token — and under
`storage.refresh_lock(key)` for threads and processes, taken on a worker thread so the event loop never
blocks. Coroutines that waited for an attempt which failed (the token endpoint hung, refused or could
not be reached) fail with it instead of each repeating it in turn (C-08: ten waiters would otherwise
fail only after ten token timeouts); a call that starts afterwards tries again. After taking each
lock the credential is read again: if someone else already replaced the
token, theirs is used. The result is committed with a version compare-and-swap before the new access
token is handed out; a lost CAS means a newer credential exists (e.g. an interactive step-up), which
wins. `invalid_grant` with a refresh token that is no longer the stored one means another worker
rotated it: the stored token is used. Only when the stored refresh token itself is refused is the
credential marked as needing re-authorization (with CAS, never deleting anything). A response without
a `refresh_token` keeps the old one (RFC 6749 §6). `resource` is sent on every refresh; `scope` is not
(the grant is never widened by a refresh).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from authlib.common.urls import add_params_to_qs
from authlib.oauth2.auth import ClientAuth, encode_client_secret_basic

from core.errors import (
    ConflictError,
    CredentialUnavailable,
    NeedsReauthorization,
    SwitchboardError,
    TokenError,
)
from core.net.urls import redact_url
from core.oauth._http import HttpResult, OAuthHttp, require_secure_url, safe_description, short_error_code
from core.oauth.storage import ClientRegistration, CredentialKey, OAuthStorage, TokenSet

EARLY_REFRESH_SECONDS = 300.0


def needs_refresh(tokens: TokenSet, now: float | None = None) -> bool:
    if tokens.expires_at is None:
        return False
    now = time.time() if now is None else now
    lifetime = max(tokens.expires_at - tokens.issued_at, 0.0)
    return tokens.expires_at - now < min(EARLY_REFRESH_SECONDS, lifetime / 2)


# --- client authentication at the token endpoint -------------------------------------------------------


def _encode_client_secret_basic(client: Any, method: str, uri: str, headers: dict, body: str):
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
    encoded = ClientAuth(quote(client.client_id, safe=""), quote(client.client_secret or "", safe=""))
    uri, headers, body = encode_client_secret_basic(encoded, method, uri, headers, body)
    # client_id also goes in the body (RFC 6749 §4.1.3 allows it): the MCP SDK's authorization
    # server refuses a token request without it, whatever the authentication method.
    return uri, headers, add_params_to_qs(body, [("client_id", client.client_id)])


def client_auth(registration: ClientRegistration) -> ClientAuth:
    """authlib's client authentication for this registration (basic, post or none)."""
    method = registration.token_endpoint_auth_method
    if method == "client_secret_basic":
        return ClientAuth(registration.client_id, registration.client_secret, _encode_client_secret_basic)
    if method in ("client_secret_post", "none"):
        return ClientAuth(registration.client_id, registration.client_secret, method)
    raise TokenError(f"unsupported token endpoint auth method {method!r}")


def encode_token_request(
    auth: ClientAuth, token_endpoint: str, params: dict[str, str]
) -> tuple[dict[str, str], str]:
    """(headers, form body) for a token-endpoint POST with client authentication applied."""
    _, headers, body = auth.prepare("POST", token_endpoint, {}, urlencode(params))
    return headers, body


# --- token responses ------------------------------------------------------------------------------------


# Request parameters whose values are secrets: an error_description that quotes one of them (some
# servers echo "invalid refresh token <token>") must not carry it into messages, logs or the store.
_SECRET_PARAMS = (
    "code",
    "code_verifier",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "subject_token",
    "actor_token",
)


def _without(text: object, secrets: tuple[str, ...]) -> object:
    if not isinstance(text, str):
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def parse_token_response(
    answer: HttpResult,
    *,
    issuer: str,
    client_id: str,
    resource: str,
    token_endpoint: str,
    requested_scopes: tuple[str, ...],
    previous: TokenSet | None = None,
    now: float | None = None,
    sent_secrets: tuple[str, ...] = (),
) -> TokenSet:
    """Validate a token-endpoint answer (RFC 6749 §5.1/§5.2); raise `TokenError` for anything else.
    `sent_secrets` (the secrets the request carried) are masked in any error description."""
    document = answer.json_object()
    where = redact_url(token_endpoint)
    if answer.status != 200:
        error = short_error_code(document.get("error")) if document else None
        if error is None:
            raise TokenError(
                f"the token endpoint {where} answered HTTP {answer.status} without an OAuth error"
            )
        description = (
            safe_description(_without(document.get("error_description"), sent_secrets)) if document else ""
        )
        raise TokenError(
            f"the token endpoint {where} refused: {error}" + (f" ({description})" if description else ""),
            error=error,
        )
    if document is None:
        raise TokenError(
            f"the token endpoint {where} did not answer with a JSON object "
            f"(content type {answer.media_type or 'none'})",
            hint="the endpoint may be a login page or a proxy error; check the server's configuration",
        )
    if "error" in document:
        raise TokenError(
            f"the token endpoint {where} answered 200 with an error",
            error=short_error_code(document["error"]),
        )
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenError(f"the token response from {where} has no access_token")
    token_type = document.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(
            f"the token response from {where} has token_type {short_error_code(token_type)}, not Bearer"
        )
    now = time.time() if now is None else now
    expires_in = document.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0
    ):
        raise TokenError(f"the token response from {where} has an invalid expires_in")
    refresh_token = document.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise TokenError(f"the token response from {where} has an invalid refresh_token")
    scope = document.get("scope")
    scopes = (
        tuple(scope.split())
        if isinstance(scope, str)
        else (previous.scopes if previous else requested_scopes)
    )
    return TokenSet(
        access_token=access_token,
        token_type="Bearer",
        refresh_token=refresh_token or (previous.refresh_token if previous else None),
        expires_at=now + expires_in if expires_in is not None else None,
        issued_at=now,
        scopes=scopes,
        issuer=issuer,
        client_id=client_id,
        resource=resource,
        token_endpoint=token_endpoint,
    )


async def request_token(
    http: OAuthHttp,
    *,
    step: str,
    token_endpoint: str,
    params: dict[str, str],
    auth: ClientAuth,
    issuer: str,
    client_id: str,
    resource: str,
    requested_scopes: tuple[str, ...] = (),
    previous: TokenSet | None = None,
) -> TokenSet:
    require_secure_url(token_endpoint, "token_endpoint", error=TokenError)
    headers, body = encode_token_request(auth, token_endpoint, params)
    async with http.exchange(
        step, "POST", token_endpoint, error=TokenError, form=body, headers=headers
    ) as answer:
        sent = tuple(v for k, v in params.items() if k in _SECRET_PARAMS and v) + (
            (auth.client_secret,) if auth.client_secret else ()
        )
        tokens = parse_token_response(
            answer,
            issuer=issuer,
            client_id=client_id,
            resource=resource,
            token_endpoint=token_endpoint,
            requested_scopes=requested_scopes,
            previous=previous,
            sent_secrets=sent,
        )
        answer.detail = "tokens issued" + (
            " (refresh token rotated)"
            if previous and previous.refresh_token and tokens.refresh_token != previous.refresh_token
            else ""
        )
        return tokens


# --- refresh: one at a time per credential ----------------------------------------------------------------

_flight_locks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, CredentialKey], asyncio.Lock]
] = weakref.WeakKeyDictionary()


def credential_lock(storage: OAuthStorage, key: CredentialKey) -> asyncio.Lock:
    """The asyncio lock under which a credential is refreshed or replaced in this event loop."""
    locks = _flight_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault((id(storage), key), asyncio.Lock())


@dataclass
class _Attempts:
    """How the refresh attempts of one credential in one event loop ended (see the module docstring)."""

    ended: int = 0
    failure: SwitchboardError | None = None  # how the last one failed; None if it did not


_attempts: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, CredentialKey], _Attempts]
] = weakref.WeakKeyDictionary()


def _attempts_of(storage: OAuthStorage, key: CredentialKey) -> _Attempts:
    per_loop = _attempts.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((id(storage), key), _Attempts())


@contextlib.asynccontextmanager
async def storage_lock(storage: OAuthStorage, key: CredentialKey) -> AsyncIterator[None]:
    """`storage.refresh_lock(key)`, entered and exited on one worker thread, never on the event loop.

    A caller that gives up while the worker still waits for the lock (cancelled, e.g. by a call
    timeout) leaves a release queued right behind the wait on the same thread: the lock is let go as
    soon as it is obtained, and neither the event loop nor the caller waits for that."""
    manager = storage.refresh_lock(key)
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="oauth-lock")
    try:
        entered = worker.submit(manager.__enter__)
        waiting = asyncio.wrap_future(entered)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            worker.submit(_exit_if_entered, manager, entered)
            waiting.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody else will look
            raise
        try:
            yield
        finally:
            await asyncio.shield(asyncio.wrap_future(worker.submit(manager.__exit__, None, None, None)))
    finally:
        worker.shutdown(wait=False)  # queued jobs (a pending release) still run


def _exit_if_entered(
    manager: contextlib.AbstractContextManager[None], entered: concurrent.futures.Future
) -> None:
    # Runs on the worker after `entered` finished (one thread, jobs in order), so this never blocks.
    if not entered.cancelled() and entered.exception() is None:
        manager.__exit__(None, None, None)


async def load_tokens(storage: OAuthStorage, key: CredentialKey) -> TokenSet | None:
    """The stored tokens; an unreadable row (unknown key, tampered or moved ciphertext) fails closed
    as "needs re-authorization", never as a crash or a fallback to other rows."""
    try:
        return await asyncio.to_thread(storage.load_tokens, key)
    except CredentialUnavailable as exc:
        raise NeedsReauthorization(
            f"the stored tokens cannot be read: {exc.message}", hint="authorize this connector again"
        ) from None


async def refresh_tokens(
    storage: OAuthStorage,
    key: CredentialKey,
    http: OAuthHttp,
    registration: ClientRegistration,
    *,
    stale: TokenSet,
    rejected: bool = False,
) -> TokenSet:
    """Replace `stale` (expiring, or `rejected` by the server) with fresh tokens; see the module docstring.

    Returns the credential to use, which may be one another worker obtained meanwhile. Raises
    `NeedsReauthorization` when the credential cannot be refreshed, `TokenError` when the AS failed.
    """

    def still_needed(current: TokenSet) -> bool:
        if rejected:
            return current.access_token == stale.access_token
        return needs_refresh(current)

    attempts = _attempts_of(storage, key)
    waited_for = attempts.ended
    async with credential_lock(storage, key):
        if attempts.ended != waited_for and attempts.failure is not None:
            raise attempts.failure  # the attempt we waited for failed: share its failure, do not repeat it
        attempts.failure = None
        try:
            return await _refresh_if_needed(storage, key, http, registration, still_needed)
        except SwitchboardError as exc:
            attempts.failure = exc
            raise
        finally:
            attempts.ended += 1


async def _refresh_if_needed(
    storage: OAuthStorage,
    key: CredentialKey,
    http: OAuthHttp,
    registration: ClientRegistration,
    still_needed: Callable[[TokenSet], bool],
) -> TokenSet:
    """The body of `refresh_tokens`, under the credential's asyncio lock."""
    current = await load_tokens(storage, key)
    if current is not None and not still_needed(current):
        return current
    async with storage_lock(storage, key):
        current = await load_tokens(storage, key)  # another process may have refreshed while we waited
        if current is None:
            raise NeedsReauthorization("this credential has no tokens any more", hint="authorize again")
        if not still_needed(current):
            return current
        reason = await asyncio.to_thread(storage.needs_reauth, key)
        if reason:
            raise NeedsReauthorization(f"this credential needs to be authorized again: {reason}")
        if not current.refresh_token:
            await asyncio.to_thread(
                storage.mark_needs_reauth,
                key,
                expected_version=current.version,
                reason="the access token expired and no refresh token was issued",
            )
            raise NeedsReauthorization(
                "the access token expired and the server issued no refresh token", hint="authorize again"
            )
        return await _refresh_locked(storage, key, http, registration, current)


async def _refresh_locked(
    storage: OAuthStorage,
    key: CredentialKey,
    http: OAuthHttp,
    registration: ClientRegistration,
    current: TokenSet,
) -> TokenSet:
    params = {"grant_type": "refresh_token", "refresh_token": current.refresh_token or ""}
    if current.resource:
        params["resource"] = current.resource
    try:
        fresh = await request_token(
            http,
            step="refresh",
            token_endpoint=current.token_endpoint,
            params=params,
            auth=client_auth(registration),
            issuer=current.issuer,
            client_id=current.client_id,
            resource=current.resource,
            requested_scopes=current.scopes,
            previous=current,
        )
    except TokenError as exc:
        if exc.error != "invalid_grant":
            raise
        latest = await load_tokens(storage, key)
        if latest is not None and (
            latest.version != current.version or latest.refresh_token != current.refresh_token
        ):
            return latest  # another worker rotated the refresh token: theirs is the valid one (C-04)
        await asyncio.to_thread(
            storage.mark_needs_reauth,
            key,
            expected_version=current.version,
            reason="the authorization server refused the refresh token",
        )
        raise NeedsReauthorization(
            "the authorization server no longer accepts this credential's refresh token",
            hint="authorize again",
        ) from None
    try:
        return await asyncio.to_thread(storage.save_tokens, key, fresh, expected_version=current.version)
    except ConflictError:
        # A newer credential was committed meanwhile (e.g. an interactive re-authorization): it wins.
        latest = await load_tokens(storage, key)
        if latest is None:
            raise NeedsReauthorization("this credential was removed while it was being refreshed") from None
        return latest
