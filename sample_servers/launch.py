"""Start sample MCP servers as subprocesses on 127.0.0.1, for tests, the demo, benchmarks, notebooks.

    from sample_servers.launch import start

    with start("sdk_oauth", token_ttl=5) as server:
        server.url            # http://127.0.0.1:PORT/mcp
        server.counters()     # what the server saw
        server.reset()

or explicitly: `server = start("bearer"); ...; server.stop()`.

Each server runs in its own process group, binds 127.0.0.1:0 itself and reports its port through
an info file, so there is no pick-a-free-port race. Its stdout and stderr go to a log file
(never a pipe a chatty server could fill); `log_tail()` reads it. Teardown sends SIGTERM to the
whole group, then SIGKILL.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx2

REPO_ROOT = Path(__file__).resolve().parents[1]
PRELOAD = Path(__file__).with_name("node_loopback_preload.cjs")
OIDC_PROVIDER_SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"

COMMON_OPTIONS = {"json_response", "stateless"}
OAUTH_OPTIONS = COMMON_OPTIONS | {
    "token_ttl",
    "refresh_ttl",
    "required_scopes",
    "require_resource",
    "iss_param",
    "revoke_requires_secret_field",
    "secret_prefix",
    "machine_clients",
    "enterprise_users",
}
KIND_OPTIONS: dict[str, set[str]] = {
    "plain": COMMON_OPTIONS,
    "modern": COMMON_OPTIONS,
    "bearer": COMMON_OPTIONS | {"keys"},
    "api_key": COMMON_OPTIONS | {"keys", "header"},
    "paginated": COMMON_OPTIONS | {"page_size", "tool_count"},
    "sdk_oauth": OAUTH_OPTIONS,
    "sdk_oauth_split": OAUTH_OPTIONS,
    "fastmcp_oauth": COMMON_OPTIONS | {"token_ttl", "required_scopes"},
    "everything": set(),
    # Not an MCP server: a real OpenID Provider (npm oidc-provider) for the dashboard's sign-in.
    "oidc": {"redirect_uris", "client_secret"},
}
KINDS = tuple(KIND_OPTIONS)
DEFAULT_IDENTITIES = ("alice", "bob")
STOP_GRACE_SECONDS = 5.0

_live: set[RunningServer] = set()


class ServerStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


class ControlError(RuntimeError):
    """A `/_control/` call failed (unknown knob, bad payload, or unsupported by this kind)."""


def node_binary() -> Path:
    default = REPO_ROOT / ".cache/node/node_modules/node/bin/node"
    return Path(os.environ.get("SWITCHBOARD_NODE") or default)


def node_modules() -> Path:
    return Path(os.environ.get("SWITCHBOARD_NODE_MODULES") or REPO_ROOT / ".cache/node/node_modules")


def everything_entry() -> Path:
    return node_modules() / EVERYTHING_PACKAGE / "dist/index.js"


@dataclass(eq=False)
class RunningServer:
    """A started sample server. Also a context manager: leaving the block stops it."""

    kind: str
    options: dict[str, Any]
    process: subprocess.Popen[bytes]
    workdir: Path
    info: dict[str, Any] = field(default_factory=dict)
    _client: httpx2.Client = field(default_factory=lambda: httpx2.Client(trust_env=False, timeout=10.0))

    # --- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The MCP endpoint, e.g. http://127.0.0.1:PORT/mcp."""
        return self.info["url"]

    @property
    def origin(self) -> str:
        return self.info["origin"]

    @property
    def port(self) -> int:
        return int(self.info["ports"][0])

    @property
    def issuer(self) -> str | None:
        """The OAuth issuer (authorization server origin); None for non-OAuth kinds."""
        return self.info.get("issuer")

    @property
    def resource_metadata_url(self) -> str | None:
        return self.info.get("resource_metadata")

    @property
    def tools(self) -> list[str]:
        """Tool names in listing order (not known for `everything`)."""
        return list(self.info.get("tools", []))

    @property
    def keys(self) -> dict[str, str]:
        """identity -> key for `bearer` / `api_key` (secrets: do not log them)."""
        return dict(self.options.get("keys", {}))

    @property
    def header(self) -> str | None:
        """The header carrying the key: `Authorization` (bearer) or e.g. `X-API-Key`."""
        return self.info.get("header")

    def auth_headers(self, identity: str) -> dict[str, str]:
        """Request headers authenticating as `identity` on a `bearer` / `api_key` server."""
        key = self.keys[identity]
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {self.header or "X-API-Key": key}

    # --- control ------------------------------------------------------------------------------

    def control(self, name: str, **payload: Any) -> dict[str, Any]:
        """POST /_control/<name> with a JSON payload; returns the JSON answer."""
        response = self._client.post(f"{self.origin}/_control/{name}", json=payload)
        if response.status_code != 200:
            raise ControlError(
                f"{self.kind}: /_control/{name} answered {response.status_code}: {response.text}"
            )
        return response.json()

    def counters(self) -> dict[str, Any]:
        return self.control("counters")

    def reset(self) -> None:
        """Zero the counters, drop pending faults, restore drifted tool descriptions and definitions."""
        self.control("reset")

    def set_tool_description(self, tool: str, description: str | None) -> None:
        """Change a tool's description at runtime (None restores it), for drift detection."""
        self.control("tool_description", tool=tool, description=description)

    def change_tool(self, tool: str, changed: bool = True) -> None:
        """Serve a changed definition of `tool` (another input schema and annotations; False
        restores it), for drift review and pinning."""
        self.control("tool_definition", tool=tool, changed=changed)

    def fail_next(
        self,
        path: str,
        status: int = 500,
        count: int = 1,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` requests to `path` ("*" = any) with `status` instead of serving them."""
        payload: dict[str, Any] = {"path": path, "status": status, "count": count, "headers": headers or {}}
        if body is not None:
            payload["body"] = body
        self.control("fail_next", **payload)

    def expire_tokens(self) -> int:
        """OAuth kinds: make every issued access token expired now."""
        return int(self.control("expire_tokens")["expired"])

    def revoke_all(self) -> int:
        """sdk_oauth kinds: revoke every token family (access and refresh tokens)."""
        return int(self.control("revoke_all")["revoked_families"])

    def next_subject(self, subject: str) -> None:
        """sdk_oauth kinds: the next authorization without a login_hint gets this subject."""
        self.control("next_subject", subject=subject)

    def configure(self, **settings: Any) -> None:
        """sdk_oauth kinds: change token_ttl, refresh_ttl, require_resource, iss_param or
        authorization_servers (what the PRM names; None: the real AS) at runtime."""
        self.control("configure", **settings)

    # --- lifecycle ----------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        log = self.workdir / "server.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after a grace period. Idempotent."""
        _live.discard(self)
        _kill_group(self.process)
        self._client.close()
        if self.workdir.exists():
            for path in self.workdir.glob("*"):
                path.unlink(missing_ok=True)
            self.workdir.rmdir()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer(kind={self.kind!r}, url={self.info.get('url')!r}, pid={self.process.pid})"


def start(kind: str, *, startup_timeout: float = 30.0, **options: Any) -> RunningServer:
    """Start a sample server of `kind` and wait until it serves HTTP. See the module docstring."""
    options = _checked_options(kind, options)
    workdir = Path(tempfile.mkdtemp(prefix=f"sample-{kind}-"))
    info_file = workdir / "info.json"
    command, env = _command(kind, options, info_file)
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    server = RunningServer(kind=kind, options=options, process=process, workdir=workdir)
    _live.add(server)
    try:
        server.info = _wait_ready(server, info_file, startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _checked_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    if kind not in KIND_OPTIONS:
        raise ValueError(f"unknown sample server kind {kind!r}; known: {', '.join(KINDS)}")
    unknown = set(options) - KIND_OPTIONS[kind]
    if unknown:
        raise ValueError(f"{kind} does not take {sorted(unknown)}; it takes {sorted(KIND_OPTIONS[kind])}")
    if kind == "oidc" and "client_secret" not in options:
        options = {**options, "client_secret": secrets.token_urlsafe(32)}
    if kind in ("bearer", "api_key") and "keys" not in options:
        # Fresh random keys per start, so no key is ever hard-coded or shared between runs.
        options = {
            **options,
            "keys": {who: f"{who}-{secrets.token_urlsafe(16)}" for who in DEFAULT_IDENTITIES},
        }
    return options


_NODE_VARIABLES = ("SWITCHBOARD_NODE", "SWITCHBOARD_NODE_MODULES")


def _command(kind: str, options: dict[str, Any], info_file: Path) -> tuple[list[str], dict[str, str]]:
    # The store's key and paths are none of a sample server's business (the npm one runs third-party code).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") or k in _NODE_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    if kind == "everything":
        return _everything_command(info_file, env)
    if kind == "oidc":
        return _oidc_command(options, info_file, env)
    env["SAMPLE_SERVER_OPTIONS"] = json.dumps(options)
    return [sys.executable, "-m", "sample_servers.serve", kind, "--info-file", str(info_file)], env


def _everything_command(info_file: Path, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    node, entry = node_binary(), everything_entry()
    for path, variable in ((node, "SWITCHBOARD_NODE"), (entry, "SWITCHBOARD_NODE_MODULES")):
        if not path.exists():
            raise ServerStartError(f"{path} not found: run ./dev test once, or set {variable}")
    # The preload forces 127.0.0.1:0 (the server would listen on all interfaces) and reports the port.
    env.update({"PORT": "0", "SAMPLE_SERVER_INFO_FILE": str(info_file)})
    return [str(node), "--require", str(PRELOAD), str(entry), "streamableHttp"], env


def _oidc_command(
    options: dict[str, Any], info_file: Path, env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    node = node_binary()
    if not (node_modules() / "oidc-provider").exists() or not node.exists():
        raise ServerStartError(
            "oidc-provider not found: run ./dev test once, or set SWITCHBOARD_NODE_MODULES"
        )
    env.update(
        {
            "SAMPLE_SERVER_INFO_FILE": str(info_file),
            "OIDC_CLIENT_SECRET": options["client_secret"],  # the environment, never argv
            "OIDC_REDIRECT_URIS": ",".join(options.get("redirect_uris", [])),
            "OIDC_PROVIDER_MODULE": str(node_modules() / "oidc-provider" / "lib" / "index.js"),
        }
    )
    return [str(node), str(OIDC_PROVIDER_SCRIPT)], env


def _wait_ready(server: RunningServer, info_file: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running:
            raise ServerStartError(
                f"{server.kind} server exited with code {server.process.returncode} during startup:\n{server.log_tail()}"
            )
        if info_file.exists():
            info = json.loads(info_file.read_text())
            if _healthy(server, info["origin"]):
                return info
        time.sleep(0.05)
    raise ServerStartError(f"{server.kind} server not ready after {timeout:.0f}s:\n{server.log_tail()}")


def _healthy(server: RunningServer, origin: str) -> bool:
    try:
        return server._client.get(f"{origin}/_control/health").status_code == 200
    except httpx2.TransportError:
        return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, STOP_GRACE_SECONDS)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@atexit.register
def _stop_all() -> None:
    """Last resort for servers nobody stopped (e.g. a notebook kernel exiting)."""
    for server in list(_live):
        server.stop()
