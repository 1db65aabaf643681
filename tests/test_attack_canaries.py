"""S-12 / R-01..R-08: marker strings as every secret, every flow run, then a search everywhere.

Markers: access and refresh tokens, authorization codes and the DCR client secret (the sample AS's
`secret_prefix`), the PKCE verifier (our generator, patched), a pre-registered client secret, bearer
and API keys, and an MCP session id (a scripted server). Searched: every log record at DEBUG from
every logger, exception texts and tracebacks, what the services hand to the dashboard (connector,
health, audit, trace and tool data, and the dashboard models' frames), CLI stdout/stderr with DEBUG
logging on, and the raw bytes of the DuckDB file and its WAL before and after CHECKPOINT.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import duckdb
import httpx2

from core.errors import SwitchboardError
from core.net import NetworkPolicy, aclose_shared_clients
from core.services import Switchboard
from sample_servers.launch import start
from tests.test_attack_kit import ScriptedMcp, hits, scan_files, scan_records

MARK = "CANARY" + secrets.token_hex(4).upper()
REPO = Path(__file__).resolve().parents[1]
LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
REDIRECT = "http://127.0.0.1:9/oauth/callback"


def _everything(obj) -> str:
    return json.dumps(obj, default=lambda o: repr(o) + str(getattr(o, "__dict__", "")))


async def _browser(url: str) -> dict[str, str]:
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


async def test_no_secret_leaks_from_services_logs_errors_dashboard_data_or_store_files(
    tmp_path, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "keys" / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    from core.oauth import flow

    verifiers: list[str] = []

    def marked_verifier() -> str:
        verifiers.append(f"{MARK}-verifier-{secrets.token_urlsafe(24)}")
        return verifiers[-1]

    monkeypatch.setattr(flow, "new_code_verifier", marked_verifier)
    store_path = tmp_path / "data" / "s.duckdb"
    texts: list[str] = []  # exception texts, tracebacks and outcome messages

    def caught(exc: BaseException) -> None:
        texts.append(str(exc) + repr(exc) + "".join(traceback.format_exception(exc)))

    oauth_server = start("sdk_oauth", secret_prefix=f"{MARK}-as-")
    bearer_server = start("bearer", keys={"alice": f"{MARK}-bearer-key"})
    scripted = await ScriptedMcp(
        session_id=f"{MARK}-session", required_header=("X-API-Key", f"{MARK}-api-key")
    ).start()
    service = Switchboard.open(str(store_path), policy=LOOPBACK, redirect_uri=REDIRECT)
    keeper = duckdb.connect(str(store_path))  # keeps the instance open: every write stays in the WAL
    try:
        # OAuth: DCR (secret), authorization (code, verifier), tokens, calls, refresh, revocation.
        await service.add_connector("oauth", oauth_server.url, "oauth")
        await service.connect("oauth")
        done = await service.complete_authorization(
            await _browser(await service.start_authorization("oauth"))
        )
        assert done.ok, done.message
        assert not (await service.call_tool("oauth", "whoami", {})).is_error
        oauth_server.expire_tokens()
        assert not (await service.call_tool("oauth", "echo", {"message": "after refresh"})).is_error
        assert oauth_server.counters()["refresh_requests"] == 1
        # failure paths whose errors must not quote a secret
        params = await _browser(await service.start_authorization("oauth"))
        oauth_server.fail_next(
            "/token",
            status=400,
            body=json.dumps(
                {"error": "invalid_grant", "error_description": f"code {params['code']} rejected"}
            ),
            headers={"content-type": "application/json"},
        )
        texts.append((await service.complete_authorization(params)).message)
        texts.append((await service.complete_authorization(params)).message)  # replay
        oauth_server.revoke_all()
        oauth_server.expire_tokens()
        try:
            await service.call_tool("oauth", "whoami", {})
        except SwitchboardError as exc:
            caught(exc)
        # Pre-registered client secret (stored only).
        await service.add_connector(
            "preregistered",
            oauth_server.url,
            "oauth",
            client_id="cid",
            client_secret=f"{MARK}-preregistered-secret",
        )
        # Bearer key: a wrong one first, then the right one.
        await service.add_connector("bearer", bearer_server.url, "bearer")
        try:
            await service.set_secret("bearer", f"{MARK}-wrong-key")
        except SwitchboardError as exc:
            caught(exc)
        await service.set_secret("bearer", f"{MARK}-bearer-key")
        assert not (await service.call_tool("bearer", "whoami", {})).is_error
        # API key and a session id, then a lost session (404) and a re-initialization.
        await service.add_connector("keyed", scripted.url, "api_key_header", header_name="X-API-Key")
        await service.set_secret("keyed", f"{MARK}-api-key")
        assert not (await service.call_tool("keyed", "echo", {"message": "hi"})).is_error
        scripted.session_id = f"{MARK}-session-2"
        assert not (await service.call_tool("keyed", "echo", {"message": "again"})).is_error
        assert (await service.sync("keyed")).ok
        # Arguments that look like secrets are redacted in the audit log.
        await service.call_tool("keyed", "echo", {"message": "x", "api_key": f"{MARK}-argument"})
        await service.disconnect("oauth")

        # What the dashboard and the CLI read from the services.
        dashboard_data = [
            await service.list_connectors(),
            await service.health(),
            await service.audit(),
            await service.auth_trace("oauth"),
            await service.tool_list(),
            await service.list_agents(),
            [await service.get_connector(n) for n in ("oauth", "preregistered", "bearer", "keyed")],
        ]
        texts.append(_everything(dashboard_data))
        texts.append(repr(service) + repr(service._pool) + repr(service.context.oauth_storage))
        try:
            from dashboard.models import AuditLog, AuthTrace, ConnectorsIndex, CredentialHealth

            models = [
                ConnectorsIndex(service=service),
                CredentialHealth(service=service),
                AuditLog(service=service),
            ]
            for model in models:
                await model.refresh()
                texts.append(model.frame().to_json())
            trace = AuthTrace(service=service, connector="oauth")
            await trace.load()
            texts.append(trace.frame().to_json())
        except ImportError:  # pragma: no cover - the dashboard is optional for core
            pass

        await service.aclose()
        await aclose_shared_clients()
        found = scan_records([MARK], caplog.records)
        found += [f for text in texts for f in hits([MARK], "an exception or service output", text)]
        wal = store_path.with_name(store_path.name + ".wal")
        assert wal.exists() and wal.stat().st_size > 0
        found += scan_files([MARK], store_path.parent)  # before CHECKPOINT: the WAL holds every write
        keeper.execute("CHECKPOINT")
        found += scan_files([MARK], store_path.parent)
        found += scan_files([MARK], tmp_path / "keys")
        assert found == [], found
        # ... and the markers did reach the places they must (the scan is not blind). Every code,
        # token and DCR secret the sample AS mints starts with the marker, so these counts say
        # marked secrets went through registration, the code exchange, a refresh and OAuth calls.
        seen = oauth_server.counters()
        assert seen["registrations"] >= 1, seen
        assert seen["tokens_issued"].get("authorization_code", 0) >= 1, seen
        assert seen["tokens_issued"].get("refresh_token", 0) >= 1, seen
        oauth_calls = sum(
            sum(tools.values()) for who, tools in seen["tool_calls"].items() if who != "anonymous"
        )
        assert oauth_calls >= 2, seen["tool_calls"]
        assert len(verifiers) >= 2 and all(MARK in v for v in verifiers)  # our marked PKCE verifiers
        assert bearer_server.counters()["tool_calls"].get("alice", {}).get("whoami") == 1
        assert any(MARK in r.headers.get("x-api-key", "") for r in scripted.server.requests)
        assert any(MARK in r.headers.get("mcp-session-id", "") for r in scripted.server.requests)
    finally:
        keeper.close()
        await scripted.stop()
        oauth_server.stop()
        bearer_server.stop()


def test_no_secret_leaks_from_the_cli(tmp_path) -> None:
    """Every CLI flow with DEBUG logging on: no marker in stdout, stderr or the store files."""
    bearer_server = start("bearer", keys={"alice": f"{MARK}-cli-bearer"})
    oauth_server = start("sdk_oauth", secret_prefix=f"{MARK}-cli-as-")
    env = {
        **os.environ,
        "SWITCHBOARD_STORE": str(tmp_path / "store.duckdb"),
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("SWITCHBOARD_KEY", None)
    debug = [
        "-c",
        (
            "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
            "from cli import main; sys.exit(main(sys.argv[1:]))"
        ),
    ]
    outputs: list[str] = []

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, *debug, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=120,
            cwd=REPO,
        )
        outputs.append(done.stdout + done.stderr)
        return done

    try:
        cli("connector", "add", "render", bearer_server.url, "--auth", "bearer")
        assert cli("credential", "set", "render", "--secret-stdin", stdin=f"{MARK}-wrong\n").returncode != 0
        assert (
            cli("credential", "set", "render", "--secret-stdin", stdin=f"{MARK}-cli-bearer\n").returncode == 0
        )
        assert cli("call", "render", "whoami", "--json").returncode == 0
        cli("connector", "add", "linear", oauth_server.url, "--auth", "oauth")
        cli(
            "connector",
            "add",
            "pre",
            oauth_server.url,
            "--auth",
            "oauth",
            "--client-id",
            "cid",
            "--client-secret-stdin",
            stdin=f"{MARK}-cli-client-secret\n",
        )
        process = subprocess.Popen(
            [sys.executable, *debug, "connect", "linear", "--no-browser", "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        line = process.stdout.readline()
        url = line.split(": ", 1)[1].strip()
        with httpx2.Client() as browser:
            callback = browser.get(url).headers["location"]
            assert MARK in callback  # the code carries the marker...
            browser.get(callback)
        process.wait(60)
        outputs.append(line + process.stdout.read() + process.stderr.read())
        assert process.returncode == 0, outputs[-1][-2000:]
        oauth_server.expire_tokens()
        assert cli("call", "linear", "whoami", "--json").returncode == 0  # refresh
        for args in (
            ("sync", "--all"),
            ("tools",),
            ("health", "--json"),
            ("connector", "list", "--json"),
            ("disconnect", "linear"),
        ):
            cli(*args)
        found = [f for text in outputs for f in hits([MARK], "CLI output", text)]
        found += scan_files([MARK], tmp_path)
        assert found == [], found
        assert oauth_server.counters()["refresh_requests"] == 1
    finally:
        bearer_server.stop()
        oauth_server.stop()
