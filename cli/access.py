"""`switchboard agent token …`, `policy …`, `pinning …`: what an agent may use through the gateway.

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
from typing import TYPE_CHECKING, Any

from cli._plumbing import Commands, emit, run, table
from core import errors

if TYPE_CHECKING:
    from core.access import AgentAccess

# The annotation hints a policy rule may name (core.access.ANNOTATIONS; spelled out here so that
# `--help` does not load the access package).
ANNOTATIONS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


def register(commands: Commands) -> None:
    token = commands.group("agent", "manage agents").group("token", "the agent's gateway tokens")
    create = token.add("create", _token_create, "create a token (printed once, as the last line)")
    create.add_argument("agent")
    create.add_argument(
        "--expires-in", type=float, metavar="DAYS", help="days until it expires (default never)"
    )
    create.add_argument("--label", default="", help="what the token is for")
    token.add("list", _token_list, "list the agent's tokens (never the tokens themselves)").add_argument(
        "agent"
    )
    revoke = token.add("revoke", _token_revoke, "revoke a token")
    revoke.add_argument("agent")
    revoke.add_argument("id")

    policy = commands.group("policy", "what an agent may call through the gateway")
    policy.add("show", _policy_show, "show an agent's rules and limits").add_argument("agent")
    for effect in ("allow", "deny"):
        rule = policy.add(effect, _policy_rule, f"add a rule that {effect}s matching tools")
        rule.set_defaults(effect=effect)
        rule.add_argument("agent")
        rule.add_argument("--connector", default="*", help="connector name glob (default *)")
        rule.add_argument("--tool", default="*", help="upstream tool name glob (default *)")
        rule.add_argument("--annotation", choices=ANNOTATIONS, help="only tools with this hint")
    remove = policy.add("remove", _policy_remove, "remove rule number N (see policy show)")
    remove.add_argument("agent")
    remove.add_argument("number", type=int)
    limits = policy.add("limits", _policy_limits, "set the agent's limits (0: the gateway default)")
    limits.add_argument("agent")
    limits.add_argument("--requests-per-minute", type=int)
    limits.add_argument("--concurrent-calls", type=int)

    pinning = commands.group("pinning", "approve connectors' tool definitions (changed ones are quarantined)")
    mode = pinning.add("mode", _pinning_mode, "show or set how new tools are approved")
    mode.add_argument("connector")
    mode.add_argument("approval", nargs="?", choices=["auto", "manual"])
    review = pinning.add("review", _pinning_review, "list tools with their approval state and changes")
    review.add_argument("connector")
    review.add_argument("--agent", help="whose list, for a per_agent connector")
    approve = pinning.add("approve", _pinning_approve, "approve tools' current definitions")
    approve.add_argument("connector")
    approve.add_argument("tools", nargs="*")
    approve.add_argument("--all", action="store_true", help="every tool not approved")
    approve.add_argument("--agent", help="whose list, for a per_agent connector")


def _access(work: Callable[[AgentAccess], Any]) -> Callable[[Any], Any]:
    from core.access import AgentAccess

    return lambda service: work(AgentAccess(service.store, principal=service.principal))


def _token_create(args: argparse.Namespace) -> None:
    issued = run(
        args, _access(lambda a: a.create_token(args.agent, expires_in_days=args.expires_in, label=args.label))
    )
    if getattr(args, "json", False):
        emit(args, issued.as_dict(), "")
        return
    print(f"token {issued.id} for agent {issued.agent}; it is shown once, store it now:")
    print(issued.token, flush=True)


def _token_list(args: argparse.Namespace) -> None:
    rows = [t.as_dict() for t in run(args, _access(lambda a: a.list_tokens(args.agent)))]
    emit(args, rows, table(rows, ["id", "label", "status", "created_at", "expires_at", "last_used_at"]))


def _token_revoke(args: argparse.Namespace) -> None:
    row = run(args, _access(lambda a: a.revoke_token(args.agent, args.id)))
    emit(args, row.as_dict(), f"revoked token {row.id} of agent {row.agent}")


def _show(args: argparse.Namespace, policy: Any) -> None:
    rows = [{"n": i, **rule.as_dict()} for i, rule in enumerate(policy.rules, 1)]
    limits = (
        f"requests per minute: {policy.requests_per_minute or 'gateway default'}; "
        f"concurrent calls: {policy.max_concurrent_calls or 'gateway default'}"
    )
    emit(
        args,
        policy.as_dict(),
        table(rows, ["n", "effect", "connector", "tool", "annotation"]) + "\n" + limits,
    )


def _policy_show(args: argparse.Namespace) -> None:
    _show(args, run(args, _access(lambda a: a.policy(args.agent))))


def _policy_rule(args: argparse.Namespace) -> None:
    from core.access import PolicyRule

    rule = PolicyRule(args.effect, args.connector, args.tool, args.annotation)
    _show(args, run(args, _access(lambda a: a.add_rule(args.agent, rule))))


def _policy_remove(args: argparse.Namespace) -> None:
    _show(args, run(args, _access(lambda a: a.remove_rule(args.agent, args.number))))


def _policy_limits(args: argparse.Namespace) -> None:
    if args.requests_per_minute is None and args.concurrent_calls is None:
        raise errors.ConfigurationError("give --requests-per-minute and/or --concurrent-calls")
    _show(
        args,
        run(
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
        mode = run(args, _access(lambda a: a.approval_mode(args.connector)))
    else:
        mode = run(args, _access(lambda a: a.set_approval_mode(args.connector, args.approval)))
    emit(
        args, {"connector": args.connector, "approval": mode}, f"{args.connector}: new tools approved {mode}"
    )


def _pinning_review(args: argparse.Namespace) -> int:
    reviews = run(args, _access(lambda a: a.reviews(args.connector, args.agent)))
    if getattr(args, "json", False):
        emit(args, [r.as_dict() for r in reviews], "")
    else:
        rows = [{"name": r.name, "state": r.state, "changed": ", ".join(r.changed_fields())} for r in reviews]
        print(table(rows, ["name", "state", "changed"]))
        for r in reviews:
            if r.state == "quarantined" and r.approved is not None:
                print(f"\n{r.name}: approved definition, then the current one")
                print(json.dumps(r.approved, indent=2, sort_keys=True))
                print(json.dumps(r.current, indent=2, sort_keys=True))
    return 0 if all(r.state == "approved" for r in reviews) else 1


def _pinning_approve(args: argparse.Namespace) -> None:
    if bool(args.tools) == bool(args.all):
        raise errors.ConfigurationError("name the tools to approve, or --all")
    names = run(args, _access(lambda a: a.approve(args.connector, args.tools or None, args.agent)))
    emit(
        args,
        {"approved": names},
        f"approved {len(names)} tool(s) of {args.connector}: {', '.join(names) or '-'}",
    )
