"""Sign-in without a browser: the settings, the sealed cookies, the dashboard secret, the refusals
before listening, the callback's state check, and OpenID Connect against the real provider (npm
`oidc-provider`), whose development login and consent screens are driven over HTTP here."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
import pytest

from core.errors import ConfigurationError, SignInError
from core.net import NetworkPolicy, aclose_shared_clients, shared_http_client
from core.oauth import OAuthHttp, well_formed_state
from core.roles import Principal, Role
from core.signin import OidcSettings, load_signin_settings
from core.signin.accounts import OperatorLogin
from core.signin.basic import PasswordSignIn
from core.signin.oidc import OidcSignIn
from core.signin.passwords import hash_password, needs_rehash, password_matches
from core.signin.sealed import Sealer
from core.signin.secret import dashboard_secret, derive_key
from dashboard.ratelimit import RateLimit
from dashboard.serve import check_exposure, serves_loopback_only
from sample_servers.launch import start
from tests.fixtures.dashboard import dashboard_env

REDIRECT = "http://127.0.0.1:9/login/callback"


# --- settings -------------------------------------------------------------------------------------


def test_token_mode_is_the_default_with_a_fresh_random_token():
    first, second = load_signin_settings({}), load_signin_settings({})
    assert first.mode == "token" and len(first.login_token) >= 40
    assert first.login_token != second.login_token
    assert "login_token" not in repr(first) or first.login_token not in repr(first)
    fixed = load_signin_settings({"SWITCHBOARD_LOGIN_TOKEN": "a-token-of-twenty-chars"})
    assert fixed.login_token == "a-token-of-twenty-chars"
    with pytest.raises(ConfigurationError, match="too short"):
        load_signin_settings({"SWITCHBOARD_LOGIN_TOKEN": "short"})
    with pytest.raises(ConfigurationError, match="not a sign-in mode"):
        load_signin_settings({"SWITCHBOARD_AUTH": "ldap"})


def test_oidc_settings_read_the_client_secret_from_a_file(tmp_path):
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_OIDC_ISSUER"):
        load_signin_settings({"SWITCHBOARD_AUTH": "oidc"})
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    settings = load_signin_settings(
        {
            "SWITCHBOARD_AUTH": "oidc",
            "SWITCHBOARD_OIDC_ISSUER": "https://id.example",
            "SWITCHBOARD_OIDC_CLIENT_ID": "switchboard",
            "SWITCHBOARD_OIDC_CLIENT_SECRET_FILE": str(secret),
            "SWITCHBOARD_OIDC_SCOPES": "email groups",
        }
    )
    assert settings.oidc.client_secret == "s3cret-value"
    assert settings.oidc.scopes == ("openid", "email", "groups")
    assert "s3cret" not in repr(settings)


def test_a_role_comes_from_the_groups_claim_or_the_allow_list():
    members = {
        Role.ADMIN: frozenset({"boss@example.com"}),
        Role.OPERATOR: frozenset({"ops"}),
        Role.VIEWER: frozenset({"staff"}),
    }
    oidc = OidcSettings("https://id.example", "c", members=members)
    assert oidc.role_of({"sub": "1", "groups": ["staff"]}) is Role.VIEWER
    assert oidc.role_of({"sub": "1", "groups": ["staff", "ops"]}) is Role.OPERATOR  # the highest
    assert oidc.role_of({"sub": "1", "email": "boss@example.com", "groups": []}) is Role.ADMIN
    assert oidc.role_of({"sub": "1", "groups": ["admin"]}) is None  # no list names it: not let in
    by_name = OidcSettings("https://id.example", "c", role_claim="switchboard_role")
    assert by_name.role_of({"sub": "1", "switchboard_role": "operator"}) is Role.OPERATOR
    assert by_name.role_of({"sub": "1", "switchboard_role": "root"}) is None


# --- sealed values and the secret -----------------------------------------------------------------


def test_a_sealed_value_can_be_neither_read_altered_moved_nor_kept_past_its_expiry():
    sealer = Sealer(derive_key(b"x" * 32, "session-cookie"))
    sealed = sealer.seal("switchboard_session", {"n": "ada", "r": "admin"}, lifetime=60)
    assert "ada" not in sealed
    assert sealer.unseal("switchboard_session", sealed) == {"n": "ada", "r": "admin"}
    assert sealer.unseal("switchboard_signin", sealed) is None  # sealed under another name
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert sealer.unseal("switchboard_session", flipped) is None
    assert Sealer(derive_key(b"y" * 32, "session-cookie")).unseal("switchboard_session", sealed) is None
    assert sealer.unseal("switchboard_session", "not base64 at all!") is None
    expired = sealer.seal("switchboard_session", {"n": "ada"}, lifetime=-1)
    assert sealer.unseal("switchboard_session", expired) is None
    assert derive_key(b"x" * 32, "a") != derive_key(b"x" * 32, "b")


def test_the_dashboard_secret_is_created_once_private_or_taken_from_the_environment(tmp_path):
    env = {"SWITCHBOARD_KEY_FILE": str(tmp_path / "conf" / "store.key")}
    created = dashboard_secret(env)
    path = tmp_path / "conf" / "dashboard.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(created) >= 32
    assert dashboard_secret(env) == created
    assert dashboard_secret({**env, "SWITCHBOARD_DASHBOARD_SECRET": "z" * 40}) == b"z" * 40
    with pytest.raises(ConfigurationError, match="too short"):
        dashboard_secret({**env, "SWITCHBOARD_DASHBOARD_SECRET": "short"})


# --- basic: passwords ------------------------------------------------------------------------------


class Operators:
    """An `OperatorDirectory` in memory: the interface sign-in reads (the store's repository in use)."""

    def __init__(self) -> None:
        self.logins: dict[str, OperatorLogin] = {}

    def add(self, name: str, role: Role, password: str, hasher=None) -> None:
        encoded = hasher.hash(password) if hasher else hash_password(password)
        self.logins[name] = OperatorLogin(name, role, encoded)

    def login_of(self, name: str) -> OperatorLogin | None:
        return self.logins.get(name)

    def replace_hash(self, name: str, old: str, new: str) -> bool:
        login = self.logins.get(name)
        if login is None or login.password_hash != old:
            return False
        self.logins[name] = OperatorLogin(name, login.role, new)
        return True


def test_a_password_is_stored_only_as_an_argon2id_hash_of_at_least_twelve_characters():
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("$argon2id$") and "correct horse" not in encoded
    assert password_matches(encoded, "correct horse battery")
    assert not password_matches(encoded, "correct horse battery ")
    assert not password_matches("not a hash", "correct horse battery")
    assert not password_matches(None, "correct horse battery")  # no such user: checked all the same
    with pytest.raises(ConfigurationError, match="at least 12 characters"):
        hash_password("short")
    assert "correct" not in repr(OperatorLogin("ada", Role.ADMIN, encoded))


async def test_basic_sign_in_checks_the_password_and_binds_the_session_to_the_account():
    operators = Operators()
    operators.add("ada", Role.OPERATOR, "ada's long password")
    passwords = PasswordSignIn(operators)

    assert await passwords.sign_in("ada", "wrong password here") is None
    assert await passwords.sign_in("nobody", "ada's long password") is None
    assert await passwords.sign_in("", "ada's long password") is None
    signed = await passwords.sign_in("ada", "ada's long password")
    assert signed is not None
    principal, account = signed
    assert principal == Principal("ada", Role.OPERATOR)
    assert await passwords.still_signed_in(principal, account)
    assert not await passwords.still_signed_in(Principal("ada", Role.ADMIN), account)  # a forged role

    operators.add("ada", Role.VIEWER, "ada's long password")  # her role changed
    assert not await passwords.still_signed_in(principal, account)
    principal, account = await passwords.sign_in("ada", "ada's long password")
    assert principal.role is Role.VIEWER and await passwords.still_signed_in(principal, account)
    operators.add("ada", Role.VIEWER, "ada's new long password")  # her password changed
    assert not await passwords.still_signed_in(principal, account)
    del operators.logins["ada"]  # removed
    assert not await passwords.still_signed_in(principal, account)


async def test_a_hash_made_with_older_parameters_is_replaced_at_the_next_sign_in():
    from argon2 import PasswordHasher

    operators = Operators()
    operators.add(
        "bob", Role.ADMIN, "bob's long password", hasher=PasswordHasher(time_cost=1, memory_cost=8192)
    )
    old = operators.logins["bob"].password_hash
    assert needs_rehash(old)
    principal, account = await PasswordSignIn(operators).sign_in("bob", "bob's long password")
    new = operators.logins["bob"].password_hash
    assert new != old and not needs_rehash(new) and password_matches(new, "bob's long password")
    assert await PasswordSignIn(operators).still_signed_in(principal, account)  # bound to the new hash


def test_a_page_session_whose_sign_in_ended_gets_no_services(monkeypatch):
    """After `end_session` (signed out elsewhere, expired), a forged event in that page session finds
    no services to act with: the models' calls raise instead of acting for the operator."""
    from dashboard import runtime

    class Document:  # stands in for a Bokeh document (weak-referenceable)
        pass

    document, view = Document(), object()
    monkeypatch.setattr(runtime, "_current_document", lambda: document)
    monkeypatch.setitem(runtime._sessions, document, view)
    assert runtime.service() is view
    runtime.end_session(document)
    with pytest.raises(SignInError, match="session has ended"):
        runtime.service()


def test_loading_the_auth_module_opens_the_shared_services_as_a_viewer(tmp_path):
    """A plain `panel serve` loads the auth module but not `switchboard serve`'s start-up: a code
    path that missed its session's view still acts as a viewer there."""
    probe = (
        "from dashboard import auth_module, runtime\n"
        "principal = runtime.service().principal\n"
        "print(principal.name, principal.role)\n"
    )
    env = {**os.environ, **dashboard_env(tmp_path, "http://localhost:5006"), "SWITCHBOARD_AUTH": "token"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "dashboard viewer"


# --- refusals before listening, the callback, rate limits -----------------------------------------


def test_exposure_checks():
    assert serves_loopback_only("127.0.0.1") and serves_loopback_only("localhost")
    assert not serves_loopback_only("0.0.0.0") and not serves_loopback_only("")
    check_exposure("127.0.0.1", "none", "http://localhost:5006", insecure_http=False)
    with pytest.raises(ConfigurationError, match="--auth none serves only loopback"):
        check_exposure("0.0.0.0", "none", "https://sb.example", insecure_http=True)
    with pytest.raises(ConfigurationError, match="--insecure-http"):
        check_exposure("0.0.0.0", "oidc", "http://sb.example", insecure_http=False)
    check_exposure("0.0.0.0", "oidc", "http://sb.example", insecure_http=True)
    check_exposure("0.0.0.0", "basic", "https://sb.example", insecure_http=False)


def test_only_states_of_switchboards_form_reach_the_store():
    import secrets

    assert well_formed_state(secrets.token_urlsafe(32))
    for junk in (None, "", "forged", "x" * 42, "x" * 44, "a" * 42 + "!", "<script>alert(1)</script>"):
        assert not well_formed_state(junk)


def test_a_rate_limit_counts_per_client_over_a_sliding_window():
    limit = RateLimit(attempts=3, seconds=0.3)
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")
    time.sleep(0.35)
    assert limit.allow("a")


def test_a_rate_limit_can_count_failures_only():
    limit = RateLimit(attempts=2, seconds=60)
    assert not limit.exhausted("a") and not limit.exhausted("a")  # looking costs nothing
    limit.count("a")
    limit.count("a")
    assert limit.exhausted("a") and not limit.exhausted("b")


# --- OpenID Connect against a real provider -------------------------------------------------------


@pytest.fixture(scope="module")
def provider():
    with start("oidc", redirect_uris=[REDIRECT]) as server:
        yield server


@pytest.fixture
async def http():
    client = shared_http_client(NetworkPolicy.allowing("127.0.0.1"))
    yield OAuthHttp(client)
    await aclose_shared_clients()


def settings_for(provider, **changes) -> OidcSettings:
    values = {
        "issuer": provider.issuer,
        "client_id": provider.info["client_id"],
        "client_secret": provider.options["client_secret"],
        "scopes": ("openid", "email", "groups"),
        "members": {Role.OPERATOR: frozenset({"switchboard-operators"}), Role.VIEWER: frozenset()},
    }
    return OidcSettings(**{**values, **changes})


def authorize(url: str, user: str) -> dict[str, str]:
    """Sign in as `user` at the provider's development screens; the callback's query parameters."""
    with httpx2.Client(trust_env=False, timeout=10.0) as browser:
        while True:
            answer = browser.get(url)
            if answer.status_code in (302, 303):
                url = urljoin(url, answer.headers["location"])
                if url.startswith(REDIRECT):
                    return dict(parse_qsl(urlsplit(url).query))
                continue
            action = urljoin(url, re.search(r'action="([^"]+)"', answer.text).group(1))
            prompt = re.search(r'name="prompt" value="(\w+)"', answer.text).group(1)
            form = (
                {"prompt": prompt, "login": user, "password": "x"}
                if prompt == "login"
                else {"prompt": prompt}
            )
            answer = browser.post(action, data=form)
            url = urljoin(action, answer.headers["location"])


async def test_oidc_sign_in_validates_the_id_token_and_maps_the_role(provider, http):
    signin = OidcSignIn(settings_for(provider), REDIRECT, http=http)
    url, state = await signin.begin("/tools")
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"] == state
    principal, back_to = await signin.finish(authorize(url, "alice"), state)
    assert principal.name == "alice@example.com (alice)" and principal.role is Role.OPERATOR
    assert back_to == "/tools"


async def test_oidc_refuses_another_browsers_state_a_replay_and_a_user_without_a_role(provider, http):
    signin = OidcSignIn(settings_for(provider), REDIRECT, http=http)
    url, state = await signin.begin("/")
    answer = authorize(url, "alice")
    with pytest.raises(SignInError, match="not started in this browser"):
        await signin.finish(answer, "another-browsers-state")
    assert (await signin.finish(answer, state))[0].role is Role.OPERATOR  # still this browser's
    with pytest.raises(SignInError, match="expired or was already used"):
        await signin.finish(answer, state)  # single use
    url, state = await signin.begin("/")
    answer = authorize(url, "victor")  # in switchboard-viewers, which no list names here
    with pytest.raises(SignInError, match="victor@example.com \\(victor\\) has no Switchboard role"):
        await signin.finish(answer, state)


async def test_oidc_refuses_a_wrong_nonce_and_a_forged_signature(provider, http):
    signin = OidcSignIn(settings_for(provider), REDIRECT, http=http)
    url, state = await signin.begin("/")
    pending = signin._pending[state]
    signin._pending[state] = type(pending)("another-nonce", pending.verifier, "/", pending.expires_at)
    with pytest.raises(SignInError, match="nonce"):
        await signin.finish(authorize(url, "alice"), state)

    class ForgedSignature(httpx2.AsyncBaseTransport):  # a fault: the token answer's signature altered
        def __init__(self, inner):
            self.inner = inner

        async def handle_async_request(self, request):
            response = await self.inner.handle_async_request(request)
            if not request.url.path.endswith("/token"):
                return response
            await response.aread()
            body = response.json()
            head, payload, signature = body["id_token"].split(".")
            body["id_token"] = f"{head}.{payload}.{signature[::-1]}"
            return httpx2.Response(200, json=body, request=request)

    client = httpx2.AsyncClient(transport=ForgedSignature(httpx2.AsyncHTTPTransport()), trust_env=False)
    forged = OidcSignIn(settings_for(provider), REDIRECT, http=OAuthHttp(client))
    url, state = await forged.begin("/")
    with pytest.raises(SignInError, match="signature does not verify"):
        await forged.finish(authorize(url, "alice"), state)
    await client.aclose()


async def test_oidc_refuses_a_code_for_another_client_and_a_mixed_up_issuer(provider, http):
    wrong_client = OidcSignIn(settings_for(provider, client_id="someone-else"), REDIRECT, http=http)
    url, state = await wrong_client.begin("/")
    issued_to_the_real_client = authorize(url.replace("someone-else", provider.info["client_id"]), "alice")
    with pytest.raises(SignInError, match="refused the code"):
        await wrong_client.finish(issued_to_the_real_client, state)
    signin = OidcSignIn(settings_for(provider), REDIRECT, http=http)
    url, state = await signin.begin("/")
    answer = {**authorize(url, "alice"), "iss": "https://evil.example"}
    with pytest.raises(SignInError, match="another identity provider"):
        await signin.finish(answer, state)
