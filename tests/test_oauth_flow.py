"""Registration ladder, authorization request, callback validation and code exchange."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import AuthorizationError, ConfigurationError, DiscoveryError, RegistrationError, TokenError
from core.oauth import (
    CredentialKey,
    authorize_headless,
    complete_authorization,
    discover,
    ensure_client,
    start_authorization,
)
from core.oauth.flow import PENDING_TTL_SECONDS
from tests.test_oauth_fakes import (
    AGENT_B,
    AS,
    KEY,
    REDIRECT_URI,
    SERVER_URL,
    FakeWorld,
    json_response,
    new_storage,
    settings,
)

CIMD_URL = "https://switchboard.example/client.json"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def callback_params(world: FakeWorld, url: str) -> dict[str, str]:
    """What the user agent would deliver to our callback after the (auto-approving) AS."""
    async with world.client() as client:
        answer = await client.get(url)
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


# --- registration ladder (A-13, A-15, A-16) ------------------------------------------------------------


async def test_pre_registered_client_means_no_registration_request() -> None:
    world = FakeWorld()
    storage = new_storage()
    found = await discover(SERVER_URL, http=world.http())
    registration = await ensure_client(
        found, settings(client_id="pre", client_secret="s3cret"), storage, http=world.http()
    )
    assert (registration.client_id, registration.method, registration.token_endpoint_auth_method) == (
        "pre",
        "pre_registered",
        "client_secret_basic",
    )
    assert not world.to("/register")


async def test_pre_registered_client_pinned_to_another_issuer_is_not_sent() -> None:
    world = FakeWorld()
    found = await discover(SERVER_URL, http=world.http())
    with pytest.raises(RegistrationError, match="pre-registered client is for https://old-as.test"):
        await ensure_client(
            found,
            settings(client_id="pre", client_secret="x", client_issuer="https://old-as.test"),
            new_storage(),
            http=world.http(),
        )


async def test_cimd_used_when_supported_and_configured() -> None:
    world = FakeWorld()
    world.metadata["client_id_metadata_document_supported"] = True
    found = await discover(SERVER_URL, http=world.http())
    registration = await ensure_client(
        found, settings(client_metadata_url=CIMD_URL), new_storage(), http=world.http()
    )
    assert registration.client_id == CIMD_URL and registration.method == "cimd"
    assert not world.to("/register")


async def test_dcr_asks_for_no_client_authentication_when_that_is_what_the_as_offers() -> None:
    """The request body and the reuse per issuer run against the sample AS
    (tests/test_oauth_flow_live.py), which offers only secret-based methods."""
    world = FakeWorld()
    found = await discover(SERVER_URL, http=world.http())
    await ensure_client(found, settings(), new_storage(), http=world.http())
    assert world.to("/register")[0].json["token_endpoint_auth_method"] == "none"


async def test_registration_honours_what_the_as_assigns() -> None:
    world = FakeWorld(
        registration_answer={"token_endpoint_auth_method": "client_secret_post", "client_secret": "zz"}
    )
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    await complete_authorization(storage, await callback_params(world, url), http=world.http())
    form = world.to("/token")[0].form
    assert form["client_secret"] == "zz" and "authorization" not in world.to("/token")[0].headers


async def test_registration_refused() -> None:
    world = FakeWorld(
        registration_status=400,
        registration_answer={"error": "invalid_redirect_uri", "error_description": "no loopback"},
    )
    with pytest.raises(RegistrationError, match="invalid_redirect_uri") as caught:
        await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert "pre-registered" in str(caught.value)
    assert not world.to("/authorize")


async def test_no_registration_endpoint_asks_for_a_pre_registered_client() -> None:
    world = FakeWorld()
    del world.metadata["registration_endpoint"]
    with pytest.raises(RegistrationError, match="no way to register") as caught:
        await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert REDIRECT_URI in caught.value.hint


# --- authorization request (A-18, A-20, A-22, A-23, A-24) ----------------------------------------------


async def test_scope_omitted_when_nothing_defines_it() -> None:
    """The other authorization URL parameters are checked against the sample AS
    (tests/test_oauth_flow_live.py), whose PRM always lists scopes."""
    world = FakeWorld()
    url, _ = await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert "scope" not in query(url)  # no challenge scope, no scopes_supported: omitted entirely


async def test_scope_from_challenge_then_prm_and_offline_access() -> None:
    world = FakeWorld()
    world.prm["scopes_supported"] = ["a", "b"]
    world.metadata["scopes_supported"] = ["a", "b", "offline_access"]
    from core.rfc9110 import Challenge

    challenged = await discover(
        SERVER_URL, challenge=Challenge("bearer", {"scope": "x y"}), http=world.http()
    )
    url, _ = await start_authorization(
        new_storage(), KEY, settings(), discovery=challenged, http=world.http()
    )
    assert query(url)["scope"] == "x y offline_access"
    url, _ = await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert query(url)["scope"] == "a b offline_access"
    world.metadata["scopes_supported"] = ["a", "b"]
    url, _ = await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert query(url)["scope"] == "a b"


async def test_hundred_flows_hundred_verifiers_never_in_a_url() -> None:
    world = FakeWorld()
    storage = new_storage()
    verifiers = set()
    for _ in range(100):
        _url, state = await start_authorization(storage, KEY, settings(), http=world.http())
        verifiers.add(storage._pending[state].code_verifier)
    assert len(verifiers) == 100
    assert not any(v in r.url for r in world.requests for v in verifiers)


async def test_no_s256_refuses_before_anything_is_opened() -> None:
    world = FakeWorld()
    world.metadata["code_challenge_methods_supported"] = ["plain"]
    with pytest.raises(DiscoveryError, match="S256"):
        await start_authorization(new_storage(), KEY, settings(), http=world.http())
    assert not world.to("/register")


@pytest.mark.parametrize("return_to", ["https://evil.example", "//evil.example", "/\\evil", "javascript:x"])
async def test_return_to_must_be_local(return_to: str) -> None:
    with pytest.raises(ConfigurationError):
        await start_authorization(
            new_storage(), KEY, settings(), return_to=return_to, http=FakeWorld().http()
        )


# --- callback (A-24, A-25, S-03, S-04) -------------------------------------------------------------------


@pytest.mark.parametrize("tamper", ["wrong", "missing", "replayed", "another_agent"])
async def test_bad_state_makes_no_token_request(tamper: str) -> None:
    world = FakeWorld()
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    params = await callback_params(world, url)
    expected_key = None
    if tamper == "wrong":
        params["state"] = "x" * 43
    elif tamper == "missing":
        del params["state"]
    elif tamper == "replayed":
        await complete_authorization(storage, dict(params), http=world.http())
        world.requests.clear()
    elif tamper == "another_agent":
        expected_key = AGENT_B
    with pytest.raises(AuthorizationError):
        await complete_authorization(storage, params, expected_key=expected_key, http=world.http())
    assert not world.to("/token")


async def test_expired_state() -> None:
    world = FakeWorld()
    storage = new_storage()
    url, state = await start_authorization(storage, KEY, settings(), http=world.http())
    params = await callback_params(world, url)
    pending = storage._pending[state]
    storage._pending[state] = type(pending)(
        **{**pending.__dict__, "created_at": time.time() - PENDING_TTL_SECONDS - 1}
    )
    with pytest.raises(AuthorizationError, match="expired"):
        await complete_authorization(storage, params, http=world.http())
    assert not world.to("/token")


@pytest.mark.parametrize(
    ("advertised", "iss", "accepted"),
    [
        (True, AS, True),
        (True, None, False),
        (False, AS, True),
        (False, None, True),
        (False, "https://evil.test", False),
        (True, AS + "/", False),
        (True, "https://AS.test", False),
        (True, "https://as.test:443", False),
    ],
)
async def test_rfc9207_iss_table(advertised: bool, iss: str | None, accepted: bool) -> None:
    world = FakeWorld(iss_in_response=iss)
    world.metadata["authorization_response_iss_parameter_supported"] = advertised
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    params = await callback_params(world, url)
    if accepted:
        await complete_authorization(storage, params, http=world.http())
        assert world.to("/token")
    else:
        with pytest.raises(AuthorizationError, match="mix-up"):
            await complete_authorization(storage, params, http=world.http())
        assert not world.to("/token")


async def test_error_response_description_shown_only_when_verified() -> None:
    world = FakeWorld()
    storage = new_storage()
    _, state = await start_authorization(storage, KEY, settings(), http=world.http())
    with pytest.raises(AuthorizationError) as caught:
        await complete_authorization(
            storage,
            {
                "state": state,
                "error": "access_denied",
                "error_description": "<script>alert(1)</script> call 555",
            },
        )
    assert (
        "access_denied" in str(caught.value)
        and "script" not in str(caught.value)
        and "555" not in str(caught.value)
    )
    _, state = await start_authorization(storage, KEY, settings(), http=world.http())
    with pytest.raises(AuthorizationError, match="mix-up") as caught:
        await complete_authorization(
            storage, {"state": state, "iss": "https://evil", "error": "x", "error_description": "<script>"}
        )
    assert "script" not in str(caught.value)
    _, state = await start_authorization(storage, KEY, settings(), http=world.http())
    with pytest.raises(AuthorizationError, match=r"access_denied \(the user said no\)"):
        await complete_authorization(
            storage,
            {"state": state, "iss": AS, "error": "access_denied", "error_description": "the user said no"},
        )


async def test_code_and_error_together_is_discarded() -> None:
    world = FakeWorld()
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    params = await callback_params(world, url)
    with pytest.raises(AuthorizationError):
        await complete_authorization(storage, {**params, "error": "server_error"}, http=world.http())
    assert not world.to("/token")


# --- token endpoint answers (A-30, S-09) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            httpx2.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
            "JSON object",
        ),
        (httpx2.Response(302, headers={"location": "https://login.example"}), "HTTP 302"),
        (
            httpx2.Response(200, content=b"\x00garbage", headers={"content-type": "application/json"}),
            "JSON object",
        ),
        (httpx2.Response(200, json=["access_token"]), "JSON object"),
        (httpx2.Response(200, json={"token_type": "Bearer"}), "no access_token"),
        (httpx2.Response(200, json={"access_token": "a", "token_type": "mac"}), "not Bearer"),
        (
            httpx2.Response(200, json={"access_token": "a", "token_type": "Bearer", "error": "x"}),
            "with an error",
        ),
        (httpx2.Response(400, json={"error": "invalid_target"}), "invalid_target"),
        (
            httpx2.Response(
                200, content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
            ),
            "larger",
        ),
    ],
)
async def test_token_endpoint_garbage_is_a_token_error(answer: httpx2.Response, message: str) -> None:
    world = FakeWorld()
    world.overrides[("POST", AS + "/token")] = answer
    storage = new_storage()
    url, state = await start_authorization(storage, KEY, settings(), http=world.http())
    params = await callback_params(world, url)
    with pytest.raises(TokenError, match=message):
        await complete_authorization(storage, params, http=world.http())
    assert storage.load_tokens(KEY) is None and state not in storage._pending  # nothing saved, state used up
    assert len(world.to("/token")) == 1  # no retry (e.g. without resource after invalid_target)


async def test_lowercase_bearer_accepted() -> None:
    world = FakeWorld()
    world.overrides[("POST", AS + "/token")] = json_response(
        200, {"access_token": "a", "token_type": "bearer"}
    )
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    _, tokens, _ = await complete_authorization(storage, await callback_params(world, url), http=world.http())
    assert tokens.token_type == "Bearer" and tokens.expires_at is None and tokens.refresh_token is None


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
async def test_token_endpoint_auth_methods(method: str) -> None:
    world = FakeWorld()
    world.metadata["token_endpoint_auth_methods_supported"] = [method]
    storage = new_storage()
    url, _ = await start_authorization(storage, KEY, settings(), http=world.http())
    await complete_authorization(storage, await callback_params(world, url), http=world.http())
    request = world.to("/token")[0]
    client = next(iter(world.clients.values()))
    if method == "client_secret_basic":
        expected = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {expected}" and "client_secret" not in request.form
    elif method == "client_secret_post":
        assert (
            request.form["client_secret"] == client["client_secret"]
            and "authorization" not in request.headers
        )
    else:
        assert request.form["client_id"] == client["client_id"] and "client_secret" not in request.form
        assert "authorization" not in request.headers


async def test_basic_auth_form_encodes_id_and_secret() -> None:
    world = FakeWorld()
    storage = new_storage()
    config = settings(client_id="id:with space", client_secret="p@ss:w/rd")
    url, _ = await start_authorization(storage, KEY, config, http=world.http())
    await complete_authorization(storage, await callback_params(world, url), http=world.http())
    header = world.to("/token")[0].headers["authorization"]
    assert base64.b64decode(header.split()[1]).decode() == "id%3Awith%20space:p%40ss%3Aw%2Frd"


async def test_headless_refuses_a_redirect_elsewhere() -> None:
    world = FakeWorld()
    world.overrides[("GET", AS + "/authorize")] = httpx2.Response(
        302, headers={"location": "https://evil/cb?code=1"}
    )
    storage = new_storage()
    with pytest.raises(AuthorizationError, match="did not redirect back"):
        await authorize_headless(storage, KEY, settings(), http=world.http())
    assert not storage._pending and not world.to("/token")


def test_credential_keys_distinguish_agents() -> None:
    assert CredentialKey("c", "a") != CredentialKey("c", "b") != CredentialKey("c")
