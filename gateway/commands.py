"""The gateway's CLI commands (handlers take parsed arguments; `register` adds them to the parser):

switchboard gateway [--port 5007] [--address 127.0.0.1] [--poll-interval 1.0]
switchboard agent token create AGENT [--expires-in DAYS] [--label TEXT]   (token: last stdout line)
switchboard agent token list AGENT
switchboard agent token revoke AGENT ID
switchboard policy show AGENT
switchboard policy allow|deny AGENT [--connector GLOB] [--tool GLOB] [--annotation HINT]
switchboard policy remove AGENT N
switchboard policy limits AGENT [--requests-per-minute N] [--concurrent-calls N]
switchboard pinning mode CONNECTOR [auto|manual]
switchboard pinning review CONNECTOR [--agent AGENT]
switchboard pinning approve CONNECTOR [TOOL ...] [--all] [--agent AGENT]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from core import errors
from core.access import ANNOTATIONS, AgentAccess, PolicyRule
from core.cli import _emit, _run, _table

_Command = Callable[..., argparse.ArgumentParser]


def register(commands: Any, agent: Any, command: _Command) -> None:
    """Add the gateway's commands: `commands` is the top-level subparsers, `agent` the `agent`
    group's, `command(name, handler, help, parent)` the CLI's own factory."""
    gateway = command("gateway", _gateway, "serve the agent gateway (MCP at /agents/<agent>/mcp)")
    gateway.add_argument("--port", type=int, default=5007, help="0 picks a free port (printed first)")
    gateway.add_argument("--address", default="127.0.0.1")
    gateway.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between checks for other processes' changes"
    )
    gateway.add_argument("--upstream-timeout", type=float, default=60.0, help="seconds per upstream call")

    token = agent.add_parser("token", help="the agent's gateway tokens").add_subparsers(metavar="ACTION")
    create = command("create", _token_create, "create a token (printed once, as the last line)", token)
    create.add_argument("agent")
    create.add_argument(
        "--expires-in", type=float, metavar="DAYS", help="days until it expires (default never)"
    )
    create.add_argument("--label", default="", help="what the token is for")
    command("list", _token_list, "list the agent's tokens (never the tokens themselves)", token).add_argument(
        "agent"
    )
    revoke = command("revoke", _token_revoke, "revoke a token", token)
    revoke.add_argument("agent")
    revoke.add_argument("id")

    policy = commands.add_parser("policy", help="what an agent may call through the gateway").add_subparsers(
        metavar="ACTION"
    )
    command("show", _policy_show, "show an agent's rules and limits", policy).add_argument("agent")
    for effect in ("allow", "deny"):
        rule = command(effect, _policy_rule, f"add a rule that {effect}s matching tools", policy)
        rule.set_defaults(effect=effect)
        rule.add_argument("agent")
        rule.add_argument("--connector", default="*", help="connector name glob (default *)")
        rule.add_argument("--tool", default="*", help="upstream tool name glob (default *)")
        rule.add_argument("--annotation", choices=ANNOTATIONS, help="only tools with this hint")
    remove = command("remove", _policy_remove, "remove rule number N (see policy show)", policy)
    remove.add_argument("agent")
    remove.add_argument("number", type=int)
    limits = command("limits", _policy_limits, "set the agent's limits (0: the gateway default)", policy)
    limits.add_argument("agent")
    limits.add_argument("--requests-per-minute", type=int)
    limits.add_argument("--concurrent-calls", type=int)

    pinning = commands.add_parser(
        "pinning", help="approve connectors' tool definitions (changed ones are quarantined)"
    ).add_subparsers(metavar="ACTION")
    mode = command("mode", _pinning_mode, "show or set how new tools are approved", pinning)
    mode.add_argument("connector")
    mode.add_argument("approval", nargs="?", choices=["auto", "manual"])
    review = command("review", _pinning_review, "list tools with their approval state and changes", pinning)
    review.add_argument("connector")
    review.add_argument("--agent", help="whose list, for a per_agent connector")
    approve = command("approve", _pinning_approve, "approve tools' current definitions", pinning)
    approve.add_argument("connector")
    approve.add_argument("tools", nargs="*")
    approve.add_argument("--all", action="store_true", help="every tool not approved")
    approve.add_argument("--agent", help="whose list, for a per_agent connector")


def _access(work: Callable[[AgentAccess], Any]) -> Callable[[Any], Any]:
    return lambda service: work(AgentAccess(service.store, operator=service.operator))


def _gateway(args: argparse.Namespace) -> int:
    from gateway.app import GatewayConfig
    from gateway.serve import serve

    config = GatewayConfig(poll_interval=args.poll_interval, upstream_timeout=args.upstream_timeout)
    return serve(address=args.address, port=args.port, store=getattr(args, "store", None), config=config)


def _token_create(args: argparse.Namespace) -> None:
    issued = _run(
        args, _access(lambda a: a.create_token(args.agent, expires_in_days=args.expires_in, label=args.label))
    )
    if getattr(args, "json", False):
        _emit(args, issued.as_dict(), "")
        return
    print(f"token {issued.id} for agent {issued.agent}; it is shown once, store it now:")
    print(issued.token, flush=True)


def _token_list(args: argparse.Namespace) -> None:
    rows = [t.as_dict() for t in _run(args, _access(lambda a: a.list_tokens(args.agent)))]
    _emit(args, rows, _table(rows, ["id", "label", "status", "created_at", "expires_at", "last_used_at"]))


def _token_revoke(args: argparse.Namespace) -> None:
    row = _run(args, _access(lambda a: a.revoke_token(args.agent, args.id)))
    _emit(args, row.as_dict(), f"revoked token {row.id} of agent {row.agent}")


def _show(args: argparse.Namespace, policy: Any) -> None:
    rows = [{"n": i, **rule.as_dict()} for i, rule in enumerate(policy.rules, 1)]
    limits = (
        f"requests per minute: {policy.requests_per_minute or 'gateway default'}; "
        f"concurrent calls: {policy.max_concurrent_calls or 'gateway default'}"
    )
    _emit(
        args,
        policy.as_dict(),
        _table(rows, ["n", "effect", "connector", "tool", "annotation"]) + "\n" + limits,
    )


def _policy_show(args: argparse.Namespace) -> None:
    _show(args, _run(args, _access(lambda a: a.policy(args.agent))))


def _policy_rule(args: argparse.Namespace) -> None:
    rule = PolicyRule(args.effect, args.connector, args.tool, args.annotation)
    _show(args, _run(args, _access(lambda a: a.add_rule(args.agent, rule))))


def _policy_remove(args: argparse.Namespace) -> None:
    _show(args, _run(args, _access(lambda a: a.remove_rule(args.agent, args.number))))


def _policy_limits(args: argparse.Namespace) -> None:
    if args.requests_per_minute is None and args.concurrent_calls is None:
        raise errors.ConfigurationError("give --requests-per-minute and/or --concurrent-calls")
    _show(
        args,
        _run(
            args,
            _access(
                lambda a: a.set_limits(
                    args.agent,
                    requests_per_minute=args.requests_per_minute,
                    max_concurrent_calls=args.concurrent_calls,
                )
            ),
        ),
    )


def _pinning_mode(args: argparse.Namespace) -> None:
    if args.approval is None:
        mode = _run(args, _access(lambda a: a.approval_mode(args.connector)))
    else:
        mode = _run(args, _access(lambda a: a.set_approval_mode(args.connector, args.approval)))
    _emit(
        args, {"connector": args.connector, "approval": mode}, f"{args.connector}: new tools approved {mode}"
    )


def _pinning_review(args: argparse.Namespace) -> int:
    reviews = _run(args, _access(lambda a: a.reviews(args.connector, args.agent)))
    if getattr(args, "json", False):
        _emit(args, [r.as_dict() for r in reviews], "")
    else:
        rows = [{"name": r.name, "state": r.state, "changed": ", ".join(r.changed_fields())} for r in reviews]
        print(_table(rows, ["name", "state", "changed"]))
        for r in reviews:
            if r.state == "quarantined" and r.approved is not None:
                print(f"\n{r.name}: approved definition, then the current one")
                print(json.dumps(r.approved, indent=2, sort_keys=True))
                print(json.dumps(r.current, indent=2, sort_keys=True))
    return 0 if all(r.state == "approved" for r in reviews) else 1


def _pinning_approve(args: argparse.Namespace) -> None:
    if bool(args.tools) == bool(args.all):
        raise errors.ConfigurationError("name the tools to approve, or --all")
    names = _run(args, _access(lambda a: a.approve(args.connector, args.tools or None, args.agent)))
    _emit(
        args,
        {"approved": names},
        f"approved {len(names)} tool(s) of {args.connector}: {', '.join(names) or '-'}",
    )
