"""`switchboard` — the command-line face of the services API.

Output is for people by default and JSON with `--json` (before or after the subcommand). Secrets are
read from stdin, never from argv. Exit codes: 0 success, 4 a tool ran but returned `isError`, other
non-zero codes with a one-line reason on stderr (see `_EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import webbrowser
from collections.abc import Sequence
from typing import Any

from core import errors

_TOOL_ERROR_EXIT = 4
_EXIT_CODES: tuple[tuple[type[errors.SwitchboardError], int], ...] = (
    (errors.ConfigurationError, 2),
    (errors.AuthError, 3),
    (errors.StoreBusy, 6),
    (errors.StoreError, 7),
    (errors.TransportError, 5),
    (errors.McpError, 5),
    (errors.NetworkPolicyError, 2),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args) or 0
    except errors.SwitchboardError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return next((code for kind, code in _EXIT_CODES if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:
        print("switchboard: interrupted", file=sys.stderr)
        return 130


# --- parser -------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a value given before the subcommand from being reset by the subparser's default.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument("--store", default=argparse.SUPPRESS, help="store file (default: SWITCHBOARD_STORE)")

    parser = argparse.ArgumentParser(prog="switchboard", parents=[common], description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler, help: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    connector = commands.add_parser("connector", help="manage MCP servers").add_subparsers(metavar="ACTION")
    add = command("add", _connector_add, "register an MCP server", connector)
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument(
        "--auth", required=True, choices=["none", "bearer", "api_key_header", "oauth", "client_credentials"]
    )
    add.add_argument("--mode", default="shared", choices=["shared", "per_agent"])
    add.add_argument("--header", help="header name for api_key_header auth (e.g. X-API-Key)")
    add.add_argument("--client-id", help="pre-registered OAuth client id")
    add.add_argument("--client-secret-stdin", action="store_true", help="read the client secret from stdin")
    command("list", _connector_list, "list MCP servers", connector)
    remove = command("remove", _connector_remove, "remove an MCP server and its credentials", connector)
    remove.add_argument("name")

    agent = commands.add_parser("agent", help="manage agents").add_subparsers(metavar="ACTION")
    agent_add = command("add", _agent_add, "create an agent", agent)
    agent_add.add_argument("name")
    agent_add.add_argument("--description", default="")
    command("list", _agent_list, "list agents", agent)
    from gateway.commands import register  # the gateway face's commands (tokens, policy, pinning)

    register(commands, agent, command)

    credential = commands.add_parser("credential", help="static credentials").add_subparsers(metavar="ACTION")
    cred_set = command("set", _credential_set, "store a bearer token or API key read from stdin", credential)
    cred_set.add_argument("connector")
    cred_set.add_argument("--agent")
    cred_set.add_argument("--secret-stdin", action="store_true", required=True)

    connect = command("connect", _connect, "connect a server (OAuth: authorize in a browser)")
    connect.add_argument("connector")
    connect.add_argument("--agent")
    connect.add_argument("--no-browser", action="store_true", help="print the URL only")
    connect.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the callback")

    disconnect = command("disconnect", _disconnect, "revoke and delete a credential")
    disconnect.add_argument("connector")
    disconnect.add_argument("--agent")

    sync = command("sync", _sync, "sync tools from servers")
    sync.add_argument("connectors", nargs="*")
    sync.add_argument("--all", action="store_true")
    sync.add_argument("--agent")

    tools = command("tools", _tools, "list synced tools")
    tools.add_argument("--connector")
    tools.add_argument("--agent")

    call = command("call", _call, "call a tool as an agent")
    call.add_argument("connector")
    call.add_argument("tool")
    call.add_argument("--agent")
    call.add_argument("--args", default="{}", help="arguments as a JSON object")

    command("health", _health, "credential health")
    command("rotate-key", _rotate_key, "re-encrypt every stored secret under a new key")

    serve = command("serve", _serve, "serve the dashboard (panel serve)")
    serve.add_argument("--port", type=int, default=5006)
    serve.add_argument("--address", default="localhost")
    serve.add_argument("--show", action="store_true", help="open a browser")

    demo = command("demo", _demo, "start local sample servers, register them, and serve the dashboard")
    demo.add_argument("--port", type=int, default=5006)
    demo.add_argument("--address", default="localhost")
    return parser


# --- plumbing -----------------------------------------------------------------------------------


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _service(args: argparse.Namespace):
    from core.services import Switchboard

    return Switchboard.open(getattr(args, "store", None))


def _run(args: argparse.Namespace, work) -> Any:
    """Run `work(service)` on a fresh event loop and close the service afterwards."""

    async def go():
        service = _service(args)
        try:
            return await work(service)
        finally:
            await service.aclose()

    return asyncio.run(go())


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if _wants_json(args):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text)
    sys.stdout.flush()


def _read_secret(what: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{what}: ")
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise errors.ConfigurationError(f"no {what} on stdin")
    return value


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)])


# --- handlers -----------------------------------------------------------------------------------


def _connector_add(args):
    secret = _read_secret("client secret") if args.client_secret_stdin else None
    spec = {
        "name": args.name,
        "url": args.url,
        "auth_type": args.auth,
        "credential_mode": args.mode,
        "header_name": args.header,
        "client_id": args.client_id,
        "client_secret": secret,
    }
    connector = _run(args, lambda s: s.add_connector(**spec))
    _emit(args, connector.as_dict(), f"added connector {connector.name} ({connector.url})")


def _connector_list(args):
    rows = [c.as_dict() for c in _run(args, lambda s: s.list_connectors())]
    _emit(
        args,
        rows,
        _table(rows, ["name", "url", "auth", "mode", "status", "tools", "last_sync", "last_error"]),
    )


def _connector_remove(args):
    _run(args, lambda s: s.remove_connector(args.name))
    _emit(args, {"removed": args.name}, f"removed connector {args.name}")


def _agent_add(args):
    agent = _run(args, lambda s: s.add_agent(args.name, args.description))
    _emit(args, agent.as_dict(), f"added agent {agent.name}")


def _agent_list(args):
    rows = [a.as_dict() for a in _run(args, lambda s: s.list_agents())]
    _emit(args, rows, _table(rows, ["name", "description", "created_at"]))


def _credential_set(args):
    secret = _read_secret("secret")
    status = _run(args, lambda s: s.set_secret(args.connector, secret, agent=args.agent))
    _emit(
        args,
        status.as_dict(),
        f"stored credential for {args.connector}"
        + (f" as {args.agent}" if args.agent else "")
        + f": {status.status}",
    )


def _connect(args):
    async def work(service):
        outcome = await service.connect_cli(
            args.connector,
            agent=args.agent,
            timeout=args.timeout,
            on_authorization_url=lambda url: _show_authorization_url(url, open_browser=not args.no_browser),
        )
        return outcome

    outcome = _run(args, work)
    _emit(args, outcome.as_dict(), outcome.summary())


def _show_authorization_url(url: str, *, open_browser: bool) -> None:
    print(f"Open this URL to authorize: {url}", flush=True)
    if open_browser:
        # webbrowser runs the browser with an argv list, never through a shell; in a thread, because a
        # text-mode browser runs in the foreground and the loopback listener must keep answering.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def _disconnect(args):
    _run(args, lambda s: s.disconnect(args.connector, agent=args.agent))
    _emit(args, {"disconnected": args.connector, "agent": args.agent}, f"disconnected {args.connector}")


def _sync(args):
    if not args.connectors and not args.all:
        raise errors.ConfigurationError("name connectors to sync, or --all")
    progress = _Progress(enabled=sys.stderr.isatty() and not _wants_json(args))

    async def work(service):
        results = []
        names = None if args.all else args.connectors
        async for result in service.sync_many(names, agent=args.agent, on_start=progress.start):
            results.append(result)
            progress.advance(result)
        return results

    results = _run(args, work)
    progress.finish()
    rows = [r.as_dict() for r in results]
    _emit(args, rows, _table(rows, ["connector", "agent", "ok", "tools", "changed", "error"]))
    return 0 if all(r.ok for r in results) else 1


def _tools(args):
    rows = _run(args, lambda s: s.tool_list(connector=args.connector, agent=args.agent))
    _emit(args, rows, _table(rows, ["connector", "agent", "name", "description"]))


def _call(args):
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise errors.ConfigurationError(
            f"--args is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(arguments, dict):
        raise errors.ConfigurationError("--args must be a JSON object")
    outcome = _run(args, lambda s: s.call_tool(args.connector, args.tool, arguments, agent=args.agent))
    _emit(args, outcome.result, outcome.text())
    return _TOOL_ERROR_EXIT if outcome.is_error else 0


def _health(args):
    rows = [h.as_dict() for h in _run(args, lambda s: s.health())]
    _emit(
        args,
        rows,
        _table(
            rows,
            [
                "connector",
                "agent",
                "kind",
                "status",
                "expires_at",
                "last_refresh_at",
                "last_401_at",
                "last_403_at",
                "reason",
            ],
        ),
    )


def _rotate_key(args):
    report = _run(args, lambda s: s.rotate_key())
    _emit(args, report, f"re-encrypted {report['reencrypted']} secret(s) under key {report['key_id']}")


def _serve(args):
    from dashboard.serve import serve

    return serve(port=args.port, address=args.address, show=args.show, store=getattr(args, "store", None))


def _demo(args):
    from dashboard.demo import run_demo

    return run_demo(port=args.port, address=args.address, store=getattr(args, "store", None))


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total
        self._draw("")

    def advance(self, result) -> None:
        self.done += 1
        self._draw(f"{result.connector}: {'ok' if result.ok else 'failed'}")

    def finish(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\n")

    def _draw(self, last: str) -> None:
        if not self.enabled or not self.total:
            return
        width = 30
        filled = int(width * self.done / self.total)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {last[:40]:<40}"
        )
        sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
