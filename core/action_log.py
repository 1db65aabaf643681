"""The operators' action log: who did what to which connector or agent, and who was refused.

Tool calls have their own audit rows (`audit_log`, naming the operator); this log holds everything
else the services change — adding a connector, a Connect, a sync, a new agent token — and every
action a role was refused (`core/roles.py`), so a viewer's forged request leaves a trace. Rows name
the acting principal and never carry arguments beyond the target's name (no secret can leak here).
"""

from __future__ import annotations

import logging

from core.roles import Principal

log = logging.getLogger("switchboard.actions")


def record_action(principal: Principal, action: str, target: str, outcome: str) -> None:
    """Note one action of `principal` on `target` (a connector's or agent's name, or "")."""
    level = logging.WARNING if outcome == "refused" else logging.INFO
    log.log(level, "%s (%s) %s %s: %s", principal.name, principal.role, action, target or "-", outcome)
