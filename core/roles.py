"""Who may do what: the three operator roles and the one table of the actions each role allows.

    viewer    inventory, health, audit, auth trace — reads only
    operator  also call tools, connect, sync, set credentials
    admin     also add and remove connectors and agents, rotate the key, manage operators and agents'
              gateway access

`ACTIONS` names every public method of the services (`Switchboard`, `AgentAccess`) with the least
role that may run it; the services enforce it (`enforce_roles`), the dashboard hides what a role may
not do by asking `allows`, and the CLI offers `ROLES` as `--role` choices. A face cannot widen it:
the check runs inside the services, so a forged websocket event from a viewer is refused there.

`enforce_roles` refuses at import a class with a public method missing from the table, so a new
action is covered the moment it is declared here (and cannot be forgotten).
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import AccessDenied


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLES.index(self)


ROLES: tuple[Role, ...] = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)  # each allows what those before it do


@dataclass(frozen=True)
class Principal:
    """Who is acting: `name` is what audit rows say (an OIDC subject and email, a basic user name,
    `local`); `role` decides what the services allow."""

    name: str
    role: Role


# The CLI and notebooks hold the store and its key, so they can do anything anyway: they act as an
# admin, named as audit rows always named them.
LOCAL_ADMIN = Principal("operator", Role.ADMIN)

_V, _O, _A = Role.VIEWER, Role.OPERATOR, Role.ADMIN

ACTIONS: Mapping[str, Role] = {
    # services lifecycle: not actions on anything
    "acting_as": _V,
    "aclose": _V,
    "access": _V,  # hands out AgentAccess for the same principal, which checks its own actions
    # Switchboard: reads
    "list_connectors": _V,
    "get_connector": _V,
    "list_agents": _V,
    "tool_page": _V,
    "tool_list": _V,
    "tool_definition": _V,
    "drift": _V,
    "health": _V,
    "credentials_for_agent": _V,
    "audit": _V,
    "auth_trace": _V,
    "overview": _V,
    "credential_scopes": _V,
    # Switchboard: using connectors
    "set_secret": _O,
    "connect": _O,
    "start_authorization": _O,
    "complete_authorization": _O,
    "connect_cli": _O,
    "disconnect": _O,
    "step_up": _O,  # authorize again with more scopes
    "sync": _O,
    "sync_many": _O,
    "call_tool": _O,
    "call_targets": _O,  # the credentials a call would use (the agent gateway's)
    "call_resolved": _O,
    # Switchboard: changing what exists
    "add_connector": _A,
    "update_connector": _A,
    "remove_connector": _A,
    "add_agent": _A,
    "update_agent": _A,
    "remove_agent": _A,
    "rotate_key": _A,
    "offboard_agent": _A,  # revoke and delete all an agent holds
    "offboard_connector": _A,  # revoke and delete every credential of a connector
    "export_config": _A,  # configuration as code: the whole setup, policies included (no secrets)
    "import_config": _A,
    # AgentAccess: reads
    "list_tokens": _V,
    "policy": _V,
    "approval_mode": _V,
    "reviews": _V,
    # AgentAccess: what agents may reach through the gateway
    "create_token": _A,
    "revoke_token": _A,
    "add_rule": _A,
    "set_policy": _A,
    "remove_rule": _A,
    "set_limits": _A,
    "set_approval_mode": _A,
    "approve": _A,
    # operators of the dashboard (basic sign-in)
    "add_operator": _A,
    "list_operators": _A,
    "remove_operator": _A,
}


def allows(role: Role, action: str) -> bool:
    """Whether `role` may run `action` (an unknown action is allowed to nobody)."""
    needed = ACTIONS.get(action)
    return needed is not None and role.rank >= needed.rank


def check(principal: Principal, action: str) -> None:
    """Raise `AccessDenied` unless `principal` may run `action`."""
    if not allows(principal.role, action):
        needed = ACTIONS.get(action, Role.ADMIN)
        raise AccessDenied(action, principal.role.value, needed=needed.value)


class Guarded(Protocol):
    """What `enforce_roles` needs of a class: who acts, and where refusals and changes are written."""

    principal: Principal

    def _record_action(self, action: str, target: str, outcome: str) -> None: ...


def enforce_roles[C: type](cls: C) -> C:
    """Check `ACTIONS` before every public method of `cls`; a refusal raises `AccessDenied` and is
    recorded with `_record_action`, as is every action that changes something (above viewer).

    Every public function of the class must be in `ACTIONS` (TypeError at import otherwise)."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue  # private helpers, properties, classmethods (constructors) are not actions
        if name not in ACTIONS:
            raise TypeError(f"{cls.__name__}.{name} has no role: add it to core.roles.ACTIONS")
        setattr(cls, name, _guard(name, member))
    return cls


def _guard(action: str, method: Callable[..., Any]) -> Callable[..., Any]:
    changes = ACTIONS[action] is not Role.VIEWER and action not in _AUDITED_ELSEWHERE

    def authorize(self: Guarded, args: tuple[Any, ...]) -> str:
        target = args[0] if args and isinstance(args[0], str) else ""
        try:
            check(self.principal, action)
        except AccessDenied:
            self._record_action(action, target, "refused")
            raise
        return target

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def guarded_coroutine(self: Guarded, *args: Any, **kwargs: Any) -> Any:
            target = authorize(self, args)
            result = await method(self, *args, **kwargs)
            if changes:
                self._record_action(action, target, "ok")
            return result

        return guarded_coroutine

    @functools.wraps(method)
    def guarded(self: Guarded, *args: Any, **kwargs: Any) -> Any:
        target = authorize(self, args)
        if changes:
            self._record_action(action, target, "started")  # e.g. sync_many: an iterator, not a result
        return method(self, *args, **kwargs)

    return guarded


# Tool calls have their own audit rows naming the operator (and the gateway's name its token).
_AUDITED_ELSEWHERE = frozenset({"call_tool", "call_targets", "call_resolved"})
