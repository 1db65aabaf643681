"""Configuration as code: export the connectors, agents, credential modes, tool approval modes and
gateway policies as YAML (no secrets), and import such a file idempotently.

Import reads and checks the whole file first (`core/configfile.py`: every problem with its line;
nothing changes when there is one), then compares it with the store and makes only the differences:
connectors and agents the file names but the store lacks are created, fields that differ are
changed, and the rest is left alone — nothing the file does not name is deleted. `dry_run` reports
the same changes without making them. Changes go through the same parts as the CLI's and the
dashboard's (the catalog, `AgentAccess`), so their checks apply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core import configfile
from core.auth_schemes import auth_scheme
from core.configfile import AgentEntry, ConfigFile, ConnectorEntry
from core.models import AgentInfo, ConnectorInfo
from core.services.catalog import Catalog

if TYPE_CHECKING:
    from core.access import AgentAccess


@dataclass(frozen=True)
class ConfigChange:
    """One change an import makes (or would make): `action` create | update of a `kind` (connector,
    agent, policy) named `name`; `fields` are what an update changes."""

    kind: str
    name: str
    action: str
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.action} {self.kind} {self.name}" + (
            f": {', '.join(self.fields)}" if self.fields else ""
        )


@dataclass(frozen=True)
class ImportReport:
    """What an import changed (or, `dry_run`, would change), and what the operator still has to do."""

    source: str
    dry_run: bool
    changes: tuple[ConfigChange, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        if not self.changes:
            lines = [f"{self.source}: nothing to change"]
        else:
            lines = [f"{self.source}: {verb} {len(self.changes)}"]
            lines += [f"  {change.describe()}" for change in self.changes]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "changes": [asdict(change) for change in self.changes],
            "notes": list(self.notes),
        }


class Configuration:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def export(self, access: AgentAccess) -> str:
        connectors = await self._catalog.list_connectors()
        agents = await self._catalog.list_agents()
        document = {
            "version": configfile.VERSION,
            "connectors": [
                {**_connector_fields(c), "approval_mode": await access.approval_mode(c.name)}
                for c in connectors
            ],
            "agents": [
                {"name": a.name, "description": a.description, "policy": await _policy(access, a.name)}
                for a in agents
            ],
        }
        return configfile.dump(document)

    async def import_text(
        self, text: str, source: str, access: AgentAccess, *, dry_run: bool
    ) -> ImportReport:
        config = configfile.parse(text, source, self._catalog.checked_url)
        connectors = {c.name: c for c in await self._catalog.list_connectors()}
        agents = {a.name: a for a in await self._catalog.list_agents()}
        changes: list[ConfigChange] = []
        notes: list[str] = []
        for entry in config.connectors:
            change = await self._connector(entry, connectors.get(entry.name), access, dry_run)
            if change is not None:
                changes.append(change)
            current = connectors.get(entry.name)
            if auth_scheme(entry.fields["auth_type"]).requires_client and not (
                current and current.has_client_secret
            ):
                notes.append(
                    f"connector {entry.name} needs its client secret: enter it in the dashboard's "
                    "connector form (secrets are never in the file)"
                )
        for entry in config.agents:
            changes += await self._agent(entry, agents.get(entry.name), access, dry_run)
        notes += _not_in_file(config, connectors, agents)
        return ImportReport(source, dry_run, tuple(changes), tuple(notes))

    async def _connector(
        self, entry: ConnectorEntry, current: ConnectorInfo | None, access: AgentAccess, dry_run: bool
    ) -> ConfigChange | None:
        wanted = dict(entry.fields)
        approval = wanted.pop("approval_mode", None)
        if current is None:
            if not dry_run:
                await self._catalog.add_connector(
                    entry.name,
                    wanted["url"],
                    wanted["auth_type"],
                    wanted.get("credential_mode", "shared"),
                    wanted.get("header_name"),
                    wanted.get("client_id"),
                    None,
                    " ".join(wanted.get("scopes") or ()) or None,
                )
                if approval is not None:
                    await access.set_approval_mode(entry.name, approval)
            return ConfigChange("connector", entry.name, "create")
        have = _connector_fields(current)
        differs = {k: v for k, v in wanted.items() if have.get(k) != v}
        if approval is not None and approval != await access.approval_mode(entry.name):
            differs["approval_mode"] = approval
        if not differs:
            return None
        if not dry_run:
            fields = {k: v for k, v in differs.items() if k != "approval_mode"}
            if fields:
                await self._catalog.update_connector(entry.name, **fields)
            if "approval_mode" in differs:
                await access.set_approval_mode(entry.name, approval)
        return ConfigChange("connector", entry.name, "update", tuple(differs))

    async def _agent(
        self, entry: AgentEntry, current: AgentInfo | None, access: AgentAccess, dry_run: bool
    ) -> list[ConfigChange]:
        changes = []
        if current is None:
            changes.append(ConfigChange("agent", entry.name, "create"))
            if not dry_run:
                await self._catalog.add_agent(entry.name, entry.description or "")
        elif entry.description is not None and current.description != entry.description:
            changes.append(ConfigChange("agent", entry.name, "update", ("description",)))
            if not dry_run:
                await self._catalog.update_agent(entry.name, entry.description)
        if entry.policy is not None:
            have = await _policy(access, entry.name) if current is not None else _EMPTY_POLICY
            differs = tuple(k for k, v in entry.policy.items() if have.get(k) != v)
            if differs:
                changes.append(ConfigChange("policy", entry.name, "update", differs))
                if not dry_run:
                    await access.set_policy(
                        entry.name,
                        entry.policy["rules"],
                        entry.policy["requests_per_minute"],
                        entry.policy["max_concurrent_calls"],
                    )
        return changes


_EMPTY_POLICY = {"rules": [], "requests_per_minute": None, "max_concurrent_calls": None}


def _connector_fields(connector: ConnectorInfo) -> dict[str, Any]:
    return {
        "name": connector.name,
        "url": connector.url,
        "auth_type": connector.auth_type,
        "credential_mode": connector.credential_mode,
        "header_name": connector.header_name,
        "client_id": connector.client_id,
        "scopes": list(connector.scopes) or None,
    }


async def _policy(access: AgentAccess, agent: str) -> dict[str, Any]:
    policy = (await access.policy(agent)).as_dict()
    policy.pop("agent")
    return policy


def _not_in_file(
    config: ConfigFile, connectors: dict[str, ConnectorInfo], agents: dict[str, AgentInfo]
) -> list[str]:
    named = {c.name for c in config.connectors}, {a.name for a in config.agents}
    kept = [f"connector {n}" for n in connectors if n not in named[0]]
    kept += [f"agent {n}" for n in agents if n not in named[1]]
    return [f"not in the file, kept as they are: {', '.join(kept)}"] if kept else []
