"""`switchboard connect|disconnect`: authorize a server (OAuth in a browser, RFC 8252 loopback
redirect) or check a static credential; revoke and delete a credential."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, run


def register(commands: Commands) -> None:
    connect = commands.add("connect", _connect, "connect a server (OAuth: authorize in a browser)")
    connect.add_argument("connector")
    connect.add_argument("--agent")
    connect.add_argument("--no-browser", action="store_true", help="print the URL only")
    connect.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the callback")

    disconnect = commands.add("disconnect", _disconnect, "revoke and delete a credential")
    disconnect.add_argument("connector")
    disconnect.add_argument("--agent")


def _connect(args: argparse.Namespace) -> None:
    async def work(service):
        return await service.connect_cli(
            args.connector,
            agent=args.agent,
            timeout=args.timeout,
            on_authorization_url=lambda url: _show_authorization_url(url, open_browser=not args.no_browser),
        )

    outcome = run(args, work)
    emit(args, outcome.as_dict(), outcome.summary())


def _show_authorization_url(url: str, *, open_browser: bool) -> None:
    print(f"Open this URL to authorize: {url}", flush=True)
    if open_browser:
        import threading
        import webbrowser  # here: only `connect` opens a browser

        # webbrowser runs the browser with an argv list, never through a shell; in a thread, because a
        # text-mode browser runs in the foreground and the loopback listener must keep answering.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def _disconnect(args: argparse.Namespace) -> None:
    removal = run(args, lambda s: s.disconnect(args.connector, agent=args.agent))
    outcome = removal.outcome.replace("_", " ") + (f" ({removal.reason})" if removal.reason else "")
    emit(
        args,
        {"disconnected": args.connector, "agent": args.agent, **removal.as_dict()},
        f"disconnected {args.connector}: {outcome}",
    )
