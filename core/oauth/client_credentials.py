"""The client_credentials grant, for agents acting as themselves (MCP ext-auth SEP-1046).

Client authentication is `client_secret_basic` (RFC 6749 §2.3.1) or `private_key_jwt` (RFC 7523 §2.2,
signed by authlib). The assertion's `aud` is the authorization server's issuer identifier — what the
MCP extension and RFC 7523bis ask for, and unambiguous where a token endpoint URL is not.
The authorization server is found through the MCP server's protected-resource metadata like any other
flow, and `resource` is sent with the grant.
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.auth import ClientAuth
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.errors import ConfigurationError, TokenError
from core.oauth._http import OAuthHttp
from core.oauth.flow import Discovery
from core.oauth.storage import ClientRegistration, TokenSet
from core.oauth.tokens import client_auth, request_token


@dataclass(frozen=True, repr=False)
class ClientCredentials:
    client_id: str
    client_secret: str | None = None
    private_key_pem: str | None = None  # set → private_key_jwt
    signing_algorithm: str | None = None  # default: RS256 for RSA keys, ES256 for P-256, EdDSA for Ed25519

    @property
    def auth_method(self) -> str:
        return "private_key_jwt" if self.private_key_pem else "client_secret_basic"

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(client_id={self.client_id!r}, method={self.auth_method!r}, <secret redacted>)"
        )


def _private_key_jwt(credentials: ClientCredentials, audience: str) -> ClientAuth:
    # JOSE (authlib's RFC 7523, joserfc) loads only when an agent signs with a key: ~50 ms of imports.
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    try:
        private_key = load_pem_private_key((credentials.private_key_pem or "").encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            "the agent's private key is not a valid unencrypted PEM private key"
        ) from None
    if isinstance(private_key, rsa.RSAPrivateKey):
        key, default_alg = RSAKey.import_key(private_key), "RS256"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        key = ECKey.import_key(private_key)
        default_alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            private_key.curve.name, ""
        )
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        key, default_alg = OKPKey.import_key(private_key), "EdDSA"
    else:
        raise ConfigurationError("unsupported private key type for private_key_jwt")
    return ClientAuth(
        credentials.client_id,
        key,
        PrivateKeyJWT(token_endpoint=audience, alg=credentials.signing_algorithm or default_alg),
    )


async def client_credentials_token(
    discovery: Discovery,
    credentials: ClientCredentials,
    *,
    scopes: tuple[str, ...] | None = None,
    http: OAuthHttp | None = None,
) -> TokenSet:
    """A token for the agent itself. `scopes` default to the discovery's scope selection."""
    http = http or OAuthHttp()
    metadata = discovery.metadata
    if credentials.auth_method == "private_key_jwt":
        auth = _private_key_jwt(credentials, metadata.issuer)
    elif credentials.client_secret:
        auth = client_auth(
            ClientRegistration(
                issuer=metadata.issuer,
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                token_endpoint_auth_method="client_secret_basic",
            )
        )
    else:
        raise ConfigurationError("client credentials need a client_secret or a private key")
    scopes = discovery.scopes() if scopes is None else scopes
    params = {"grant_type": "client_credentials", "resource": discovery.resource}
    if scopes:
        params["scope"] = " ".join(scopes)
    try:
        return await request_token(
            http,
            step="client_credentials",
            token_endpoint=metadata.token_endpoint,
            params=params,
            auth=auth,
            issuer=metadata.issuer,
            client_id=credentials.client_id,
            resource=discovery.resource,
            requested_scopes=scopes,
        )
    except TokenError as exc:
        if exc.error in ("invalid_client", "unauthorized_client"):
            raise TokenError(
                exc.message,
                error=exc.error,
                hint="check the agent's client_id and secret or key at the authorization server",
            ) from None
        raise
