"""`switchboard connector add|list|offboard|remove`: register and remove MCP servers.

`remove` revokes every credential of the connector at its authorization server first (what each
server did is printed; exit 3 when a revocation failed, the credentials are deleted anyway);
`offboard` does the revoking and deleting and keeps the connector.
"""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, emit_offboarding, read_secret, run, table
from core.auth_schemes import AUTH_TYPES
from core.models import CREDENTIAL_MODES


def register(commands: Commands) -> None:
    connector = commands.group("connector", "manage MCP servers")
    add = connector.add("add", _add, "register an MCP server")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--auth", required=True, choices=AUTH_TYPES)
    add.add_argument("--mode", default="shared", choices=CREDENTIAL_MODES)
    add.add_argument("--header", help="header name for api_key_header auth (e.g. X-API-Key)")
    add.add_argument("--client-id", help="pre-registered OAuth client id")
    add.add_argument("--client-secret-stdin", action="store_true", help="read the client secret from stdin")
    connector.add("list", _list, "list MCP servers")
    offboard = connector.add(
        "offboard", _offboard, "revoke and delete every credential of an MCP server (keeps the server)"
    )
    offboard.add_argument("name")
    remove = connector.add("remove", _remove, "revoke its credentials, then remove an MCP server")
    remove.add_argument("name")


def _add(args: argparse.Namespace) -> None:
    secret = read_secret("client secret") if args.client_secret_stdin else None
    spec = {
        "name": args.name,
        "url": args.url,
        "auth_type": args.auth,
        "credential_mode": args.mode,
        "header_name": args.header,
        "client_id": args.client_id,
        "client_secret": secret,
    }
    connector = run(args, lambda s: s.add_connector(**spec))
    emit(args, connector.as_dict(), f"added connector {connector.name} ({connector.url})")


def _list(args: argparse.Namespace) -> None:
    rows = [c.as_dict() for c in run(args, lambda s: s.list_connectors())]
    emit(
        args, rows, table(rows, ["name", "url", "auth", "mode", "status", "tools", "last_sync", "last_error"])
    )


def _offboard(args: argparse.Namespace) -> int | None:
    return emit_offboarding(args, run(args, lambda s: s.offboard_connector(args.name)))


def _remove(args: argparse.Namespace) -> int | None:
    return emit_offboarding(args, run(args, lambda s: s.remove_connector(args.name)))
