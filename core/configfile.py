"""Configuration as code: the YAML file `switchboard export` writes and `switchboard import` reads.

    version: 1
    connectors:
      - name: linear
        url: https://mcp.linear.app/mcp
        auth_type: oauth              # one of core.auth_schemes.AUTH_TYPES
        credential_mode: shared       # shared | per_agent
        header_name: null             # api_key_header only
        client_id: null               # a pre-registered OAuth client (its secret is never in the file)
        scopes: [read, write]         # null: what the server asks for
        approval_mode: auto           # the gateway's tool pinning: auto | manual
    agents:
      - name: ops-bot
        description: ""
        policy:                       # the gateway policy (core/access/policy.py)
          rules:
            - {effect: deny, connector: "*", tool: "*", annotation: destructiveHint}
          requests_per_minute: null
          max_concurrent_calls: null

No secrets: keys, tokens and client secrets stay in the store (a `client_secret` key is refused).
`parse` checks the whole file before anything is applied and reports every problem with its line
(PyYAML's composed nodes carry their position); a key an entry leaves out is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.access.policy import PolicyRule
from core.auth_schemes import AUTH_TYPES, auth_scheme, header_name_problem
from core.errors import InvalidConfigFile, SwitchboardError
from core.models import CREDENTIAL_MODES
from core.store import APPROVAL_MODES

VERSION = 1
SECRET_KEYS = ("client_secret", "secret", "token", "api_key", "access_token", "refresh_token")
CONNECTOR_KEYS = (
    "name",
    "url",
    "auth_type",
    "credential_mode",
    "header_name",
    "client_id",
    "scopes",
    "approval_mode",
)
AGENT_KEYS = ("name", "description", "policy")
POLICY_KEYS = ("rules", "requests_per_minute", "max_concurrent_calls")
RULE_KEYS = ("effect", "connector", "tool", "annotation")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ConnectorEntry:
    name: str
    fields: dict[str, Any]  # the keys the file gives, of CONNECTOR_KEYS minus name, checked


@dataclass(frozen=True)
class AgentEntry:
    name: str
    description: str | None  # None: not in the file
    policy: dict[str, Any] | None  # Policy.as_dict() without the agent; None: not in the file


@dataclass(frozen=True)
class ConfigFile:
    connectors: tuple[ConnectorEntry, ...] = ()
    agents: tuple[AgentEntry, ...] = ()


def dump(document: Mapping[str, Any]) -> str:
    """The YAML text of an exported document (keys in the order given, block style)."""
    header = "# Switchboard configuration (switchboard export). No secrets: after importing, set keys with\n"
    header += "# `switchboard credential set` and client secrets in the dashboard's connector form.\n"
    return header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)


def parse(text: str, source: str, check_url: Callable[[str], str]) -> ConfigFile:
    """The checked contents of a configuration file; `InvalidConfigFile` listing every problem with
    its line. `check_url` returns a server URL's canonical form or raises (the network policy)."""
    reader = _Reader(source)
    document = reader.load(text)
    if not reader.problems:
        config = reader.config(document, check_url)
        if not reader.problems:
            return config
    raise InvalidConfigFile(source, tuple(reader.problems))


@dataclass
class _Reader:
    source: str
    problems: list[str] = field(default_factory=list)
    lines: dict[Path, int] = field(default_factory=dict)  # where each value starts

    def problem(self, path: Path, message: str) -> None:
        while path and path not in self.lines:
            path = path[:-1]
        self.problems.append(f"{self.source}:{self.lines.get(path, 1)}: {message}")

    # --- YAML with positions ------------------------------------------------------------------

    def load(self, text: str) -> Any:
        self._scalars = yaml.SafeLoader("")  # builds each scalar by the tag the composer resolved
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            self.problems.append(f"{self.source}:{line}: not valid YAML: {exc.problem or exc.context}")
            return None
        if node is None:
            self.problems.append(f"{self.source}:1: the file is empty")
            return None
        return self._value(node, ())

    def _value(self, node: yaml.Node, path: Path) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalars.construct_object(key_node)
                if not isinstance(key, str):
                    self.lines[(*path, str(key))] = key_node.start_mark.line + 1
                    self.problem((*path, str(key)), f"a key must be text, not {key!r}")
                    continue
                if key in result:
                    self.lines[(*path, key)] = key_node.start_mark.line + 1
                    self.problem((*path, key), f"{key!r} is given twice")
                    continue
                result[key] = self._value(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._value(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalars.construct_object(node)

    # --- the document -------------------------------------------------------------------------

    def config(self, document: Any, check_url: Callable[[str], str]) -> ConfigFile:
        if not self._mapping(document, (), ("version", "connectors", "agents"), "the file"):
            return ConfigFile()
        if document.get("version", VERSION) != VERSION:
            self.problem(("version",), f"version {document['version']!r} is not supported (use {VERSION})")
        connectors = self._entries(document, "connectors", lambda e, p: self._connector(e, p, check_url))
        agents = self._entries(document, "agents", self._agent)
        return ConfigFile(tuple(connectors), tuple(agents))

    def _entries(self, document: dict[str, Any], key: str, read: Callable[[Any, Path], Any]) -> list[Any]:
        entries = document.get(key)
        if entries is None:
            return []
        if not isinstance(entries, list):
            self.problem((key,), f"{key} is a list")
            return []
        found, names = [], set()
        for i, entry in enumerate(entries):
            item = read(entry, (key, i))
            if item is None:
                continue
            if item.name in names:
                self.problem((key, i, "name"), f"{key[:-1]} {item.name!r} is listed twice")
            names.add(item.name)
            found.append(item)
        return found

    def _connector(self, entry: Any, path: Path, check_url: Callable[[str], str]) -> ConnectorEntry | None:
        if not self._mapping(entry, path, CONNECTOR_KEYS, "a connector"):
            return None
        name, url, auth_type = (
            self._text(entry, path, k, required=True) for k in ("name", "url", "auth_type")
        )
        fields: dict[str, Any] = {}
        if url is not None:
            try:
                fields["url"] = check_url(url)
            except SwitchboardError as exc:
                self.problem((*path, "url"), str(exc))
        if auth_type is not None:
            if auth_type in AUTH_TYPES:
                fields["auth_type"] = auth_type
            else:
                self.problem((*path, "auth_type"), f"auth_type is one of {', '.join(AUTH_TYPES)}")
        for key, choices in (("credential_mode", CREDENTIAL_MODES), ("approval_mode", APPROVAL_MODES)):
            if key in entry:
                value = entry[key]
                if value in choices:
                    fields[key] = value
                else:
                    self.problem((*path, key), f"{key} is one of {', '.join(choices)}, not {value!r}")
        for key in ("header_name", "client_id"):
            if key in entry:
                fields[key] = self._text(entry, path, key) or None
        if auth_type in AUTH_TYPES and auth_scheme(auth_type).header_name:
            problem = header_name_problem(fields.get("header_name"))
            if problem:
                self.problem((*path, "header_name"), problem)
        if "scopes" in entry:
            scopes = entry["scopes"]
            if scopes is not None and not (
                isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)
            ):
                self.problem((*path, "scopes"), "scopes is a list of scope names, or null")
            else:
                fields["scopes"] = list(scopes) if scopes else None
        return ConnectorEntry(name, fields) if name is not None else None

    def _agent(self, entry: Any, path: Path) -> AgentEntry | None:
        if not self._mapping(entry, path, AGENT_KEYS, "an agent"):
            return None
        name = self._text(entry, path, "name", required=True)
        description = (self._text(entry, path, "description") or "") if "description" in entry else None
        policy = self._policy(entry["policy"], (*path, "policy")) if "policy" in entry else None
        return AgentEntry(name, description, policy) if name else None

    def _policy(self, policy: Any, path: Path) -> dict[str, Any] | None:
        if not self._mapping(policy, path, POLICY_KEYS, "a policy"):
            return None
        rules = policy.get("rules")
        rules = [] if rules is None else rules
        if not isinstance(rules, list):
            self.problem((*path, "rules"), "rules is a list")
            rules = []
        checked = []
        for i, rule in enumerate(rules):
            if not self._mapping(rule, (*path, "rules", i), RULE_KEYS, "a rule"):
                continue
            try:
                checked.append(PolicyRule.from_dict(rule).as_dict())
            except SwitchboardError as exc:
                self.problem((*path, "rules", i), str(exc))
            except KeyError:
                self.problem((*path, "rules", i), "a rule needs an effect (allow or deny)")
        limits = {}
        for key in ("requests_per_minute", "max_concurrent_calls"):
            value = policy.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                self.problem((*path, key), f"{key} is a positive whole number, or null for the default")
            limits[key] = value
        return {"rules": checked, **limits}

    def _mapping(self, value: Any, path: Path, keys: tuple[str, ...], what: str) -> bool:
        if not isinstance(value, dict):
            self.problem(path, f"{what} is a mapping of {', '.join(keys)}")
            return False
        for key in value:
            if key in SECRET_KEYS:
                self.problem(
                    (*path, key),
                    f"{key!r}: secrets are not imported; set them after importing "
                    "(`switchboard credential set`, the dashboard's connector form)",
                )
            elif key not in keys:
                self.problem((*path, key), f"unknown key {key!r} in {what} (known: {', '.join(keys)})")
        return True

    def _text(self, entry: dict[str, Any], path: Path, key: str, *, required: bool = False) -> str | None:
        value = entry.get(key)
        if value is None or (isinstance(value, str) and not value.strip() and required):
            if required:
                self.problem((*path, key), f"{key} is required")
            return None
        if not isinstance(value, str):
            self.problem((*path, key), f"{key} is text, not {type(value).__name__}")
            return None
        return value.strip()
