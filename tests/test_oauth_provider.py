"""OAuthProvider (the transport's CredentialProvider), client_credentials, and secret hygiene."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from joserfc import jwt
from joserfc.jwk import ECKey

from core.errors import InsufficientScope, NeedsReauthorization, RegistrationError, TokenError
from core.mcp.auth import AuthChallenge
from core.oauth import (
    ClientCredentials,
    MemoryTrace,
    OAuthProvider,
    TokenSet,
    authorize_headless,
    client_credentials_token,
    discover,
)
from core.rfc9110 import Challenge
from tests.test_oauth_fakes import (
    AS,
    KEY,
    RS,
    SERVER_URL,
    FakeWorld,
    json_response,
    new_storage,
    settings,
)

UNAUTHORIZED = AuthChallenge(
    401, (Challenge("bearer", {"error": "invalid_token"}),), SERVER_URL, "tools/list"
)


def forbidden(scope: str, method: str = "tools/call") -> AuthChallenge:
    return AuthChallenge(
        403, (Challenge("bearer", {"error": "insufficient_scope", "scope": scope}),), SERVER_URL, method
    )


async def authorized(world: FakeWorld, storage, key=KEY, **changes) -> TokenSet:
    return await authorize_headless(storage, key, settings(**changes), http=world.http())


async def test_step_up_interactive_raises_with_the_union_of_scopes() -> None:
    world = FakeWorld()
    world.prm["scopes_supported"] = ["read"]
    storage = new_storage()
    await authorized(world, storage)
    provider = OAuthProvider(storage, KEY, settings(), http=world.http())
    await provider.auth_headers()
    with pytest.raises(InsufficientScope) as caught:
        await provider.handle_challenge(forbidden("write"))
    assert caught.value.scopes == ("read", "write")


async def test_step_up_headless_reauthorizes_and_is_capped() -> None:
    world = FakeWorld()
    world.prm["scopes_supported"] = ["read"]
    storage = new_storage()
    await authorized(world, storage)
    provider = OAuthProvider(storage, KEY, settings(), http=world.http(), headless=True)
    await provider.auth_headers()
    for _ in range(3):
        assert await provider.handle_challenge(forbidden("write")) is True
    scopes = [r.query.get("scope") for r in world.to("/authorize")]
    assert scopes == ["read", "read write", "read write", "read write"]
    with pytest.raises(InsufficientScope, match="still refused after 3"):
        await provider.handle_challenge(forbidden("write"))
    assert len(world.to("/authorize")) == 4


# --- client_credentials ------------------------------------------------------------------------------


async def test_client_credentials_private_key_jwt_audience_is_the_issuer() -> None:
    world = FakeWorld()
    world.overrides[("POST", AS + "/token")] = json_response(
        200, {"access_token": "cc", "token_type": "Bearer"}
    )
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    found = await discover(SERVER_URL, http=world.http())
    await client_credentials_token(found, ClientCredentials("agent", private_key_pem=pem), http=world.http())
    form = world.to("/token")[0].form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = jwt.decode(form["client_assertion"], ECKey.import_key(key.public_key())).claims
    assert claims["iss"] == claims["sub"] == "agent" and claims["aud"] == AS and claims["jti"]


async def test_client_credentials_secret_never_goes_to_another_authorization_server() -> None:
    world = FakeWorld()
    world.overrides[("POST", AS + "/token")] = json_response(
        200, {"access_token": "cc", "token_type": "Bearer"}
    )
    pinned = settings(client_id="agent", client_issuer="https://other-as.test")
    provider = OAuthProvider(
        new_storage(),
        KEY,
        pinned,
        http=world.http(),
        client_credentials=ClientCredentials("agent", client_secret="s"),
    )
    with pytest.raises(RegistrationError, match="not sent there"):
        await provider.handle_challenge(UNAUTHORIZED)
    assert world.to("/token") == []


# --- secrets never leak (S-12, R-07) -----------------------------------------------------------------


async def test_canaries_stay_out_of_logs_errors_reprs_and_trace(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world = FakeWorld(
        registration_answer={
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": "CANARY-SECRET",
        }
    )
    canaries = ["CANARY-SECRET", "CANARY-AT", "CANARY-RT", "CANARY-CODE"]

    def issue(record):
        if record.form.get("grant_type") == "refresh_token":
            return json_response(400, {"error": "invalid_grant", "error_description": "x"})
        return json_response(
            200, {"access_token": "CANARY-AT", "token_type": "Bearer", "refresh_token": "CANARY-RT"}
        )

    def approve(record):
        params = {"code": "CANARY-CODE", "state": record.query["state"]}
        return httpx2.Response(
            302,
            headers={
                "location": record.query["redirect_uri"]
                + "?"
                + "&".join(f"{k}={v}" for k, v in params.items())
            },
        )

    world.overrides[("POST", AS + "/token")] = issue
    world.overrides[("GET", AS + "/authorize")] = approve
    storage = new_storage()
    trace = MemoryTrace()
    tokens = await authorize_headless(storage, KEY, settings(), http=world.http(trace))
    verifier = dict(parse_qsl(world.to("/token")[0].body.decode()))["code_verifier"]
    provider = OAuthProvider(storage, KEY, settings(), http=world.http(trace))
    await provider.auth_headers()
    errors = []
    for attempt in range(2):
        try:
            await provider.handle_challenge(UNAUTHORIZED)
        except Exception as exc:  # noqa: BLE001 - collecting whatever surfaces
            errors.append(exc)
    texts = [
        repr(tokens),
        repr(storage.get_client(AS, settings().redirect_uri)),
        repr(provider),
        repr(settings(client_secret="CANARY-SECRET")),
        caplog.text,
        json.dumps([e.__dict__ for e in trace.events]),
        *(str(e) + repr(e) for e in errors),
    ]
    for text in texts:
        for canary in (*canaries, verifier):
            assert canary not in text
    assert errors and isinstance(errors[0], NeedsReauthorization)


async def test_token_error_messages_do_not_echo_bodies() -> None:
    world = FakeWorld()
    world.overrides[("POST", AS + "/token")] = httpx2.Response(
        500, text="internal CANARY-BODY", headers={"content-type": "text/plain"}
    )
    found = await discover(SERVER_URL, http=world.http())
    with pytest.raises(TokenError) as caught:
        await client_credentials_token(found, ClientCredentials("a", client_secret="s"), http=world.http())
    assert "CANARY-BODY" not in str(caught.value) and RS not in str(caught.value)
