"""The call path: validate a tool call, send it with the credential the agent uses, audit it.

Every tool call — the dashboard's playground, the CLI's `call`, a notebook, and (next) the agent
gateway — comes through `ToolCalls.call`, which names the acting operator in the audit row. The
arguments are validated against the tool's inputSchema (from the synced inventory; a tool never
synced for this credential is synced once first) before anything is sent, and written to the audit
log redacted. The call already happened when its audit row is written: a store that cannot take the
row must not turn the result into an error (an operator might run a destructive tool twice), so that
failure is logged loudly instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import AuthError, NotFoundError, StoreError, SwitchboardError
from core.models import CallOutcome
from core.oauth import CredentialKey
from core.services.context import ServiceContext
from core.services.credentials import Credentials, key_of, list_owner, resolve_key
from core.services.sync import SyncEngine
from core.store.records import Connector
from core.validation import validate_arguments

if TYPE_CHECKING:
    from core.mcp.types import ToolResult

log = logging.getLogger(__name__)


class ToolCalls:
    def __init__(self, context: ServiceContext, credentials: Credentials, syncs: SyncEngine) -> None:
        self._context = context
        self._credentials = credentials
        self._syncs = syncs

    async def call(
        self,
        connector: str,
        tool: str,
        arguments: Mapping[str, Any],
        agent: str | None = None,
        *,
        operator: str,
    ) -> CallOutcome:
        """Validate the arguments, call the tool as `agent` and append the call to the audit log."""
        call = await self._context.db(self._call_context, connector, tool, agent)
        # The client first: a missing credential is the clearest error.
        client = await self._credentials.client(call.connector, call.key, call.stamp)
        definition = call.definition or await self._definition_after_sync(call.connector, tool, agent)
        validate_arguments(tool, definition.get("inputSchema"), arguments)
        audit = {
            "connector_id": call.connector.id,
            "tool": tool,
            "agent_id": call.agent_id,
            "operator": operator,
            "arguments": dict(arguments),
        }
        started = time.perf_counter()
        try:
            async with self._credentials.pool.using(client):
                result = await client.call_tool(tool, dict(arguments))
        except SwitchboardError as exc:
            if isinstance(exc, AuthError):
                await self._context.record_failure(call.connector, exc)
            latency = (time.perf_counter() - started) * 1000
            await self._context.db(
                self._audit, call.key, status="error", error=str(exc)[:500], latency_ms=latency, **audit
            )
            raise
        latency = (time.perf_counter() - started) * 1000
        status = "tool_error" if result.is_error else "ok"
        await self._context.db(self._audit, call.key, status=status, latency_ms=latency, **audit)
        return CallOutcome(
            call.connector.name, agent, tool, result=result.raw, is_error=result.is_error, latency_ms=latency
        )

    async def targets(self, agent_id: str) -> dict[str, CallTarget | SwitchboardError]:
        """For every connector, what a call as the agent would use (by the connector's mode: the
        shared credential, or this agent's own — never another agent's), read in one store session;
        the error a call would raise instead."""

        def resolve() -> dict[str, CallTarget | SwitchboardError]:
            store = self._context.store
            found: dict[str, CallTarget | SwitchboardError] = {}
            with store.session():
                for conn in store.connectors.list():
                    try:
                        key = key_of(conn, agent_id, managing=False)
                        found[conn.name] = CallTarget(conn, key, store.credentials.stamp(key))
                    except SwitchboardError as exc:
                        found[conn.name] = exc
            return found

        return await self._context.db(resolve)

    async def call_resolved(
        self, target: CallTarget, tool: str, arguments: Mapping[str, Any], *, timeout: float | None = None
    ) -> ToolResult:
        """Call a tool with a target from `targets`, on the pooled client (refreshing tokens as every
        call does), without touching the store on the way: for callers that resolve once per store
        change and audit in batches (the agent gateway). No argument validation, no audit row."""
        client = await self._credentials.client(target.connector, target.key, target.stamp)
        try:
            async with self._credentials.pool.using(client):
                return await client.call_tool(tool, arguments, timeout=timeout)
        except AuthError as exc:
            await self._context.record_failure(target.connector, exc)
            raise

    def _call_context(self, connector: str, tool: str, agent: str | None) -> _CallContext:
        """Everything a call needs from the store, read in one session (each session costs a DuckDB open)."""
        store = self._context.store
        with store.session():
            conn = store.connectors.named(connector)
            key = resolve_key(store, conn, agent, managing=False)
            agent_id = key.agent_id or (store.agents.named(agent).id if agent else "")
            try:
                definition = store.tools.definition(conn.id, key.agent_id, tool)  # the list of its credential
            except NotFoundError:
                definition = None
            stamp = store.credentials.stamp(key)
        return _CallContext(conn, key, agent_id, definition, stamp)

    async def _definition_after_sync(self, conn: Connector, tool: str, agent: str | None) -> dict[str, Any]:
        # Never synced (e.g. a per-agent connector this agent just connected): sync once, then judge.
        owner = list_owner(conn, agent)
        await self._syncs.sync(conn.name, owner)
        store = self._context.store

        def definition() -> dict[str, Any]:
            with store.session():
                owner_id = store.agents.named(owner).id if owner is not None else ""
                return store.tools.definition(conn.id, owner_id, tool)

        return await self._context.db(definition)

    def _audit(self, key: CredentialKey, **entry: Any) -> None:
        store = self._context.store
        try:
            with store.session():
                info = store.credentials.info(key)
                store.audit.record(credential_fingerprint=info.fingerprint if info else None, **entry)
        except StoreError as exc:
            log.error("could not write the audit row for %s: %s", entry.get("tool"), exc)


@dataclass(frozen=True)
class CallTarget:
    """Where a call as some agent goes and with which credential (see `ToolCalls.targets`)."""

    connector: Connector
    key: CredentialKey
    stamp: tuple | None  # None: no credential stored for this key


@dataclass(frozen=True)
class _CallContext:
    connector: Connector
    key: CredentialKey
    agent_id: str
    definition: dict[str, Any] | None
    stamp: tuple | None
