"""Where a connector's auth type is decided: one `AuthScheme` per `auth_type`, read by every layer.

A connector stores its auth type as a plain string (`connectors.auth_type`). Everything that depends
on it — the label a form offers, whether the operator types in a secret, which credential kind the
store keeps, whether tokens come from an authorization server (client id and secret, scopes, the
pinned issuer), whether a person must authorize in a browser, the header-name rule, and how the
transport's `CredentialProvider` is built — is a field of the scheme here, so the services, the
store, the dashboard and the CLI ask the scheme instead of comparing strings. Adding a scheme is
adding one row to `AUTH_SCHEMES` (and its value to the `connectors.auth_type` CHECK in the schema).

The OAuth package is imported only when an OAuth provider is built: reading the registry (the
store, the CLI's `connector list`) must not load authlib.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import AuthRequired, ConfigurationError
from core.mcp.auth import CredentialProvider, NoAuth, StaticHeader
from core.rfc9110 import is_token

if TYPE_CHECKING:
    from core.oauth import TokenSet

DEFAULT_API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True, repr=False)
class ProviderInputs:
    """What building one credential's provider may use, read from the store in one session.

    `oauth` builds the services' `OAuthProvider` for this credential (storage, key, settings and
    HTTP already bound); a scheme passes it what is its own (stored tokens, client credentials).
    """

    connector: str  # the connector's name, for messages
    agent: str | None
    header_name: str | None = None
    client_id: str | None = None
    secret: str | None = None  # the stored bearer token or API key
    client_secret: str | None = None  # the connector's client secret
    tokens: TokenSet | None = None  # the stored OAuth tokens, when still usable
    unreadable: str | None = None  # why a stored secret could not be decrypted
    oauth: Callable[..., CredentialProvider] | None = None

    def missing(self) -> str:
        """The sentence for a credential that does not exist yet."""
        if self.agent:
            return f"agent {self.agent} has no credential for {self.connector}"
        return f"{self.connector} has no shared credential yet"


ProviderFactory = Callable[[ProviderInputs], CredentialProvider]


@dataclass(frozen=True)
class AuthScheme:
    """What one `auth_type` means. See the module docstring."""

    name: str  # the stored `auth_type`
    label: str  # what the connector form offers
    credential_kind: str  # `credentials.kind` of its credential; "none" for no credential at all
    build: ProviderFactory = field(repr=False)
    static_secret: bool = False  # the operator types in a secret (bearer token, API key)
    secret_label: str = ""  # what that secret is called on forms
    header_name: bool = False  # the secret goes in a header the operator names
    authorization_server: bool = False  # tokens come from an OAuth AS: client id/secret, scopes, issuer
    browser: bool = False  # a person authorizes in a browser: Connect leads to an authorization URL
    requires_client: bool = False  # the connector needs its own client id and secret

    @property
    def needs_credential(self) -> bool:
        return self.credential_kind != "none"

    def provider(self, inputs: ProviderInputs) -> CredentialProvider:
        """The transport's credential provider for one credential of this scheme."""
        return self.build(inputs)


def header_name_problem(header_name: str | None) -> str | None:
    """Why `header_name` cannot carry an API key, or None. The one rule — an RFC 9110 token, which
    `StaticHeader` enforces on the real header too — for the form, the CLI and the services."""
    name = (header_name or "").strip()
    if not name:
        return "api_key_header auth needs a header name"
    if not is_token(name):
        return f"{name!r} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    return None


def checked_header_name(header_name: str | None) -> str:
    """`header_name` stripped; `ConfigurationError` naming the rule when it cannot carry an API key."""
    problem = header_name_problem(header_name)
    if problem:
        raise ConfigurationError(problem, hint=f"e.g. {DEFAULT_API_KEY_HEADER}")
    return (header_name or "").strip()


# --- provider factories ---------------------------------------------------------------------------


def _no_auth(_inputs: ProviderInputs) -> CredentialProvider:
    return NoAuth()


def _stored_secret(inputs: ProviderInputs) -> str:
    if inputs.secret is None:
        raise AuthRequired(inputs.missing(), hint="enter the key (dashboard) or `switchboard credential set`")
    return inputs.secret


def _bearer(inputs: ProviderInputs) -> CredentialProvider:
    return StaticHeader.bearer(_stored_secret(inputs))


def _api_key(inputs: ProviderInputs) -> CredentialProvider:
    return StaticHeader.api_key(inputs.header_name or DEFAULT_API_KEY_HEADER, _stored_secret(inputs))


def _authorization_code(inputs: ProviderInputs) -> CredentialProvider:
    if inputs.tokens is None:
        raise AuthRequired(inputs.missing(), hint="use Connect in the dashboard or `switchboard connect`")
    assert inputs.oauth is not None, "the services bind an OAuth provider for OAuth schemes"
    return inputs.oauth(tokens=inputs.tokens)


def _client_credentials(inputs: ProviderInputs) -> CredentialProvider:
    if not inputs.client_id:
        raise ConfigurationError(
            f"connector {inputs.connector!r} needs a client id for client_credentials",
            hint="edit the connector and enter its client id and secret",
        )
    from core.oauth import ClientCredentials  # loaded only when an OAuth provider is built

    assert inputs.oauth is not None, "the services bind an OAuth provider for OAuth schemes"
    return inputs.oauth(
        client_credentials=ClientCredentials(client_id=inputs.client_id, client_secret=inputs.client_secret)
    )


AUTH_SCHEMES: dict[str, AuthScheme] = {
    scheme.name: scheme
    for scheme in (
        AuthScheme("none", "None (public server)", "none", _no_auth),
        AuthScheme(
            "bearer", "Bearer token", "bearer", _bearer, static_secret=True, secret_label="Bearer token"
        ),
        AuthScheme(
            "api_key_header",
            "API key header",
            "api_key",
            _api_key,
            static_secret=True,
            secret_label="API key",
            header_name=True,
        ),
        AuthScheme(
            "oauth",
            "OAuth 2.1 (browser sign-in)",
            "oauth",
            _authorization_code,
            authorization_server=True,
            browser=True,
        ),
        AuthScheme(
            "client_credentials",
            "OAuth client credentials",
            "client_credentials",
            _client_credentials,
            authorization_server=True,
            requires_client=True,
        ),
    )
}
AUTH_TYPES = tuple(AUTH_SCHEMES)


def scheme_of_kind(credential_kind: str) -> AuthScheme:
    """The scheme whose credentials are of `credential_kind` (a credential row outliving its connector)."""
    for scheme in AUTH_SCHEMES.values():
        if scheme.credential_kind == credential_kind:
            return scheme
    raise ConfigurationError(f"unknown credential kind {credential_kind!r}")


def auth_scheme(auth_type: str) -> AuthScheme:
    """The scheme of a stored or requested `auth_type`; `ConfigurationError` names the known ones."""
    scheme = AUTH_SCHEMES.get(auth_type)
    if scheme is None:
        raise ConfigurationError(
            f"unknown auth type {auth_type!r}", hint=f"use one of: {', '.join(AUTH_TYPES)}"
        )
    return scheme
