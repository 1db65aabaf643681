"""Offboarding: revoke everything an agent or a connector holds, then forget it here.

Each credential is revoked at its authorization server (RFC 7009) when the server offers revocation,
then deleted locally whatever happened — the operator asked to forget it, and a failed revocation
must not keep a secret in the store. The report says per credential and server what happened:
revoked, deleted locally only (a static key, a server without revocation: why), or failed (the
error). An agent's gateway tokens are revoked too, and authorizations still in flight for what is
offboarded are cancelled: a consent given in a browser tab left open must not bring a credential back. Disconnecting one credential, removing a
connector and removing an agent all go through here, so none of them leaves tokens alive at a
server without saying so.
"""

from __future__ import annotations

import asyncio
import logging

from core import oauth
from core.auth_schemes import auth_scheme
from core.errors import SwitchboardError
from core.models import CredentialInfo, CredentialRemoval, OffboardingReport
from core.oauth import CredentialKey
from core.roles import Principal
from core.services.context import ServiceContext, new_attempt
from core.services.credentials import Credentials
from core.store.records import Connector

log = logging.getLogger(__name__)

# Authorization servers are asked in parallel, a few at a time: one slow server does not hold up
# the rest, and a large offboarding does not open hundreds of connections at once.
_CONCURRENT_REVOCATIONS = 8


class Offboarding:
    def __init__(self, context: ServiceContext, credentials: Credentials) -> None:
        self._context = context
        self._credentials = credentials

    async def offboard_agent(
        self, name: str, *, remove: bool = False, principal: Principal
    ) -> OffboardingReport:
        """Revoke and delete the agent's own credentials (per-agent connectors; the shared ones are
        not its to revoke) and revoke its gateway tokens; `remove` deletes the agent afterwards."""
        store = self._context.store
        agent = await self._context.db(store.agents.named, name)
        from core.access import AgentAccess  # here: only offboarding an agent needs the gateway's side

        # The gateway tokens first: the agent stops reaching its tools before its tokens are revoked.
        access = AgentAccess(store, principal=principal)  # checks that `principal` may revoke
        revoked = 0
        for token in await access.list_tokens(agent.name):
            if token.status() != "revoked":
                await access.revoke_token(agent.name, token.id)
                revoked += 1
        await self._cancel_pending(agent_id=agent.id)
        removals = await self._remove_all(await self._context.db(store.credentials.health, None, agent.id))
        if remove:
            await self._credentials.pool.forget(lambda key: key.agent_id == agent.id)
            await self._context.db(store.agents.delete, agent.id)
        return OffboardingReport(f"agent {agent.name}", removals, revoked, remove)

    async def offboard_connector(self, name: str, *, remove: bool = False) -> OffboardingReport:
        """Revoke and delete every credential of the connector, shared and per agent; `remove`
        deletes the connector (its tools and pending authorizations) afterwards."""
        store = self._context.store
        connector = await self._context.connector(name)
        await self._cancel_pending(connector_id=connector.id)
        removals = await self._remove_all(await self._context.db(store.credentials.health, connector.id))
        if remove:
            await self._credentials.pool.forget(lambda key: key.connector_id == connector.id)
            await self._context.db(store.connectors.delete, connector.id)
        return OffboardingReport(f"connector {connector.name}", removals, 0, remove)

    async def remove(
        self, connector: Connector, key: CredentialKey, agent: str | None, kind: str
    ) -> CredentialRemoval:
        """Revoke one credential where its server allows, then delete it here (always)."""
        await self._cancel_pending(connector_id=key.connector_id, agent_id=key.agent_id)
        scheme = auth_scheme(connector.auth_type)
        if scheme.authorization_server:
            outcome, server, reason = await self._revoke(connector, key)
        else:
            outcome, server = "deleted_locally", oauth.origin(connector.url)
            reason = (
                f"a {scheme.secret_label or scheme.label} cannot be revoked from here: "
                "revoke it at the server if it may have leaked"
            )
        await self._credentials.pool.forget(lambda k: k == key)
        await self._context.db(self._context.store.credentials.delete, key)
        return CredentialRemoval(connector.name, agent, kind, server, outcome, reason)

    async def _cancel_pending(self, **which: str) -> None:
        cancelled = await self._context.db(self._context.store.pending.discard, **which)
        if cancelled:
            log.info("cancelled %d authorization(s) in flight", cancelled)

    async def _revoke(self, connector: Connector, key: CredentialKey) -> tuple[str, str, str]:
        """(outcome, authorization server, reason) of revoking the credential's tokens at its AS."""
        server = connector.issuer or oauth.origin(connector.url)
        trace = oauth.MemoryTrace()
        try:
            settings = await self._credentials.read_settings(connector)
            revocation = await oauth.revoke(
                self._context.oauth_storage, key, settings, http=self._context.oauth_http(trace)
            )
        except SwitchboardError as exc:
            # Reported, and the credential is still deleted: the operator asked to forget it.
            log.warning("revocation for %s failed: %s", connector.name, exc)
            return "failed", server, str(exc)
        finally:
            await self._context.save_trace(key, trace, new_attempt())
        server = revocation.issuer or server
        return (
            ("revoked", server, "") if revocation.revoked else ("deleted_locally", server, revocation.reason)
        )

    async def _remove_all(self, credentials: list[CredentialInfo]) -> tuple[CredentialRemoval, ...]:
        store = self._context.store

        def keys() -> list[tuple[Connector, CredentialKey, str | None, str]]:
            with store.session():  # names to ids, in one lock hold
                found = []
                for credential in credentials:
                    connector = store.connectors.named(credential.connector)
                    agent_id = store.agents.named(credential.agent).id if credential.agent else ""
                    key = CredentialKey(connector.id, agent_id)
                    found.append((connector, key, credential.agent, credential.kind))
                return found

        limit = asyncio.Semaphore(_CONCURRENT_REVOCATIONS)

        async def one(
            connector: Connector, key: CredentialKey, agent: str | None, kind: str
        ) -> CredentialRemoval:
            async with limit:
                return await self.remove(connector, key, agent, kind)

        return tuple(await asyncio.gather(*(one(*k) for k in await self._context.db(keys))))
