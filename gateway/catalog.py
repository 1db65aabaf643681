"""What a gateway process knows of the store, and how it keeps up with changes made anywhere.

Nothing is read from the store on a request's path. One background task polls
`store.gateway.changes()` every `poll_interval` seconds (one short store session, which also
records this process's heartbeat and writes the queued audit rows, `gateway.audit`); when the value moves, it reloads tokens, agents and policies and
rebuilds the view of every agent it serves, then tells the listeners which agents' visible tool sets
changed (for `notifications/tools/list_changed`). A change made by the CLI or the dashboard in
another process — a new or revoked token, a policy, a sync that quarantines a tool, an approval —
therefore applies in every gateway process within one poll interval.

An `AgentView` is one agent's tool set: visible tools (wire definitions under gateway names, the
JSON of the list encoded once), the route of each to its connector and credential (resolved by
`Switchboard.call_targets`, by the connector's mode), and for every hidden name the reason a call to
it is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.access.policy import Policy
from core.errors import SwitchboardError
from core.models import AgentInfo
from core.services import CallTarget, Switchboard
from core.store import ActiveToken, AgentPolicy, tool_state
from gateway.audit import AuditBatch, AuditWriter
from gateway.naming import gateway_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    connector: str
    connector_id: str
    tool: str
    target: CallTarget


@dataclass(frozen=True)
class Refusal:
    connector: str
    connector_id: str
    tool: str
    outcome: str  # quarantined | pending | denied | not_connected
    message: str


@dataclass
class AgentView:
    agent: AgentInfo
    tools: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    refusals: dict[str, Refusal] = field(default_factory=dict)
    unconnected: dict[str, str] = field(default_factory=dict)  # "<connector>__" -> why and the fix
    digest: str = ""
    listing: bytes = b"[]"  # the JSON array of `tools`, encoded once

    def refusal(self, name: str) -> Refusal | None:
        found = self.refusals.get(name)
        if found is not None:
            return found
        for prefix, message in self.unconnected.items():
            if name.startswith(prefix):
                connector = prefix.removesuffix("__")
                return Refusal(connector, "", name[len(prefix) :], "not_connected", message)
        return None


def build_view(
    agent: AgentInfo,
    rows: list[dict[str, Any]],
    targets: dict[str, CallTarget | SwitchboardError],
    policy: Policy,
) -> AgentView:
    """One agent's view from its catalog rows (`store.gateway.agent_catalog`)."""
    view = AgentView(agent)
    listed: set[str] = set()
    for connector, target in targets.items():
        if isinstance(target, CallTarget) and target.stamp is None and target.connector.auth_type != "none":
            view.unconnected[f"{connector}__"] = _not_connected(target, agent.name)
    for row in rows:
        connector, tool, definition = row["connector"], row["name"], row["definition"]
        name = gateway_name(connector, tool)
        if name in listed or name in view.refusals:
            log.warning("two tools map to the gateway name %s; keeping the first", name)
            continue
        target = targets.get(connector)
        outcome, message = _hidden_because(row, target, policy, agent.name)
        if outcome is not None:
            view.refusals[name] = Refusal(connector, row["connector_id"], tool, outcome, message)
            continue
        assert isinstance(target, CallTarget)
        listed.add(name)
        view.routes[name] = Route(connector, row["connector_id"], tool, target)
        view.tools.append({**definition, "name": name})
    view.listing = json.dumps(view.tools, separators=(",", ":")).encode()
    view.digest = hashlib.sha256(view.listing).hexdigest()
    return view


def _hidden_because(
    row: dict[str, Any], target: CallTarget | SwitchboardError | None, policy: Policy, agent: str
) -> tuple[str | None, str]:
    connector, tool = row["connector"], row["name"]
    if target is None or isinstance(target, SwitchboardError):
        return "not_connected", f"{connector} is not available: {target or 'unknown connector'}"
    if target.stamp is None and target.connector.auth_type != "none":
        return "not_connected", _not_connected(target, agent)
    state = tool_state(row["def_hash"], row["approved_hash"])
    if state == "quarantined":
        return "quarantined", (
            f"{connector}'s tool {tool} changed since it was approved and is quarantined until an operator "
            f"reviews it (`switchboard pinning review {connector}`, then `pinning approve`)"
        )
    if state == "pending":
        return "pending", (
            f"{connector}'s tool {tool} awaits an operator's approval "
            f"(`switchboard pinning approve {connector} {tool}`)"
        )
    denial = policy.denial(connector, tool, row["definition"].get("annotations"))
    if denial is not None:
        return "denied", f"agent {agent} may not call {connector}'s tool {tool}: {denial}"
    return None, ""


def _not_connected(target: CallTarget, agent: str) -> str:
    conn = target.connector
    if conn.credential_mode == "per_agent":
        fix = (
            f"`switchboard connect {conn.name} --agent {agent}`"
            if conn.auth_type in ("oauth", "client_credentials")
            else f"`switchboard credential set {conn.name} --agent {agent} --secret-stdin`"
        )
        return f"agent {agent} has not connected {conn.name}: an operator connects it with {fix}"
    return (
        f"{conn.name} has no shared credential: an operator connects it (`switchboard connect {conn.name}`)"
    )


class Catalog:
    """Tokens, agents, policies and agent views of one gateway process (see the module docstring)."""

    def __init__(
        self,
        service: Switchboard,
        *,
        poll_interval: float = 1.0,
        on_change: Callable[[set[str]], None] | None = None,
        audit: AuditWriter | None = None,
    ) -> None:
        self.service = service
        self.store = service.store
        self.poll_interval = poll_interval
        self.on_change = on_change
        self.audit = audit  # its rows ride in the poll's store session: one session per poll, not two
        self.instance_id = os.urandom(8).hex()
        self.started_at = time.time()
        self.tokens: dict[str, ActiveToken] = {}
        self.agents: dict[str, AgentInfo] = {}  # by id
        self.agent_ids: dict[str, str] = {}  # name -> id
        self.policies: dict[str, Policy] = {}  # by agent id
        self.instances = 1
        self.polls = 0
        self._views: dict[str, AgentView] = {}
        self._building: dict[str, asyncio.Future[AgentView]] = {}
        self._changes: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.poll()
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task is not None:
            # Not cancelled: a poll under way finishes, so its audit rows are written or queued
            # again (for the last flush), never both.
            self._stopping.set()
            await self._task
        try:
            await asyncio.to_thread(self.store.gateway.remove_instance, self.instance_id)
        except SwitchboardError as exc:
            log.warning("could not remove this gateway's heartbeat: %s", exc)

    def policy(self, agent_id: str) -> Policy:
        return self.policies.get(agent_id) or Policy(self.agents[agent_id].name)

    async def view(self, agent_id: str) -> AgentView:
        """The agent's view, built on first use (concurrent first requests share one build)."""
        found = self._views.get(agent_id)
        if found is not None:
            return found
        pending = self._building.get(agent_id)
        if pending is None:
            pending = self._building[agent_id] = asyncio.ensure_future(self._build(agent_id))
            pending.add_done_callback(lambda _: self._building.pop(agent_id, None))
        view = await asyncio.shield(pending)
        self._views.setdefault(agent_id, view)
        return self._views[agent_id]

    async def _build(self, agent_id: str) -> AgentView:
        agent = self.agents[agent_id]
        targets = await self.service.call_targets(agent.id)
        rows = await asyncio.to_thread(self.store.gateway.agent_catalog, agent.id)
        return build_view(agent, rows, targets, self.policy(agent_id))

    async def poll(self) -> None:
        """One poll: audit rows, heartbeat and change check in one store session; reload when changed.
        `polls` counts finished polls, reload included (what /healthz reports and tests wait for)."""
        batch = self.audit.take() if self.audit is not None else None
        try:
            changes, self.instances = await asyncio.to_thread(self._check, batch)
        finally:
            if batch is not None:  # unwritten rows (no session, a refused write) wait for the next poll
                self.audit.settle(batch)
        if changes != self._changes:
            await self._reload()
            self._changes = changes
        self.polls += 1

    def _check(self, batch: AuditBatch | None) -> tuple[Any, int]:
        stale_after = max(10.0, 5 * self.poll_interval)
        with self.store.session():
            if batch is not None:
                self.audit.write(batch)
            return self.store.gateway.changes(), self.store.gateway.heartbeat(
                self.instance_id, self.started_at, stale_after
            )

    async def _reload(self) -> None:
        def load() -> tuple[list[ActiveToken], list[AgentInfo], dict[str, AgentPolicy]]:
            with self.store.session():
                return (
                    self.store.agent_tokens.active(time.time()),
                    self.store.agents.list(),
                    self.store.policies.all(),
                )

        tokens, agents, policies = await asyncio.to_thread(load)
        self.tokens = {t.token_hash: t for t in tokens}
        self.agents = {a.id: a for a in agents}
        self.agent_ids = {a.name: a.id for a in agents}
        self.policies = {
            agent_id: Policy.from_rows(p.agent, p.rules, p.requests_per_minute, p.max_concurrent_calls)
            for agent_id, p in policies.items()
        }
        changed: set[str] = set()
        for agent_id, old in list(self._views.items()):
            if agent_id not in self.agents:
                del self._views[agent_id]
                changed.add(agent_id)
                continue
            new = await self._build(agent_id)
            self._views[agent_id] = new
            if new.digest != old.digest:
                changed.add(agent_id)
        if changed and self.on_change is not None:
            self.on_change(changed)

    async def _poll_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.poll_interval)
                return
            except TimeoutError:
                pass
            try:
                await self.poll()
            except SwitchboardError as exc:
                log.warning("gateway poll failed (serving what it knew): %s", exc)
            except Exception:  # a bug must not stop the gateway from ever seeing changes again
                log.exception("gateway poll failed unexpectedly")
