"""OAuth client registrations per (issuer, redirect URI); the client secret encrypted.

Registrations are found for refresh by (issuer, client id): the CLI's loopback redirect and the
dashboard's callback register separately. Dynamic registration runs once per (issuer, redirect URI)
across processes because `core.oauth` re-checks and registers under `refresh_lock` of a synthetic key.
"""

from __future__ import annotations

import json
import time

from core.oauth.storage import ClientRegistration
from core.store.repositories.base import Repository
from core.store.schema import CLIENT_SECRETS

# Fields of a registration response that are secrets themselves (RFC 7591 §3.2.1, RFC 7592 §3).
_REGISTRATION_SECRETS = frozenset({"client_secret", "registration_access_token"})


class RegistrationRepository(Repository):
    def get(self, issuer: str, redirect_uri: str) -> ClientRegistration | None:
        return self._where("issuer = ? AND redirect_uri = ?", [issuer, redirect_uri])

    def by_client_id(self, issuer: str, client_id: str) -> ClientRegistration | None:
        return self._where(
            "issuer = ? AND client_id = ? ORDER BY updated_at DESC LIMIT 1", [issuer, client_id]
        )

    def save(self, registration: ClientRegistration) -> None:
        document = {k: v for k, v in registration.registration.items() if k not in _REGISTRATION_SECRETS}
        now = time.time()
        with self._store.tx() as tx:
            for uri in registration.redirect_uris or ("",):
                row = {
                    "issuer": registration.issuer,
                    "redirect_uri": uri,
                    "client_id": registration.client_id,
                }
                blob = (
                    self._store.seal(
                        tx, registration.client_secret, CLIENT_SECRETS.secret_context("client_secret", row)
                    )
                    if registration.client_secret
                    else None
                )
                tx.execute(
                    "INSERT INTO oauth_clients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (issuer, redirect_uri) DO UPDATE SET client_id = excluded.client_id, "
                    "client_secret = excluded.client_secret, method = excluded.method, "
                    "token_endpoint_auth_method = excluded.token_endpoint_auth_method, "
                    "redirect_uris = excluded.redirect_uris, "
                    "client_secret_expires_at = excluded.client_secret_expires_at, "
                    "registration = excluded.registration, updated_at = excluded.updated_at",
                    [
                        registration.issuer,
                        uri,
                        registration.client_id,
                        blob,
                        registration.method,
                        registration.token_endpoint_auth_method,
                        list(registration.redirect_uris),
                        registration.client_secret_expires_at,
                        json.dumps(document, sort_keys=True, default=str),
                        now,
                        now,
                    ],
                )

    def _where(self, condition: str, params: list[str]) -> ClientRegistration | None:
        with self._store.tx() as tx:
            row = tx.one(f"SELECT * FROM oauth_clients WHERE {condition}", params)
            if row is None:
                return None
            secret = self._store.unseal(CLIENT_SECRETS, "client_secret", row)
        return ClientRegistration(
            issuer=row["issuer"],
            client_id=row["client_id"],
            client_secret=secret.reveal() if secret else None,
            token_endpoint_auth_method=row["token_endpoint_auth_method"],
            redirect_uris=tuple(row["redirect_uris"]),
            method=row["method"],
            client_secret_expires_at=row["client_secret_expires_at"],
            registration=json.loads(row["registration"]),
        )
