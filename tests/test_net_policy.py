"""Outbound network policy (S-05): address checks, connect-time enforcement, the trap listener."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import trustme

from core.errors import InvalidUrlError, NetworkPolicyError
from core.net.client import (
    aclose_shared_clients,
    create_http_client,
    shared_http_client,
)
from core.net.policy import ALLOW_HOSTS_ENV, NetworkPolicy, is_loopback_host

# --- pure address checks --------------------------------------------------------------------------

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # IPv4-mapped
    "::ffff:0:808:808",  # IPv4-translated
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
    "192.0.1.1",  # next to 192.0.0.0/24 and 192.0.2.0/24, in neither
]
REFUSED = [
    "127.0.0.1",
    "127.0.0.2",
    "::1",  # loopback
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",  # private
    "169.254.169.254",
    "fe80::1",  # link-local (cloud metadata)
    "100.64.0.1",  # carrier-grade NAT: neither private nor global
    "fc00::1",
    "fd12:3456::1",  # unique local
    "::ffff:127.0.0.2",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "2002:7f00:2::1",  # 6to4 wrapping 127.0.0.2
    "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
    "0.0.0.0",
    "::",  # unspecified (reaches localhost on Linux)
    "224.0.0.1",
    "ff02::1",  # multicast
    "192.0.2.1",
    "2001:db8::1",  # documentation
    # Issue 16 (4): passed on Python 3.12.1, whose `is_global` said yes.
    "192.0.0.192",  # IETF protocol assignments; Oracle Cloud metadata
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "168.63.129.16",  # Azure host agent: a public address, refused by name
    # The rest of the special-purpose registries, and cloud metadata, on any Python.
    "192.0.0.9",  # PCP anycast (marked globally reachable: refused anyway)
    "192.31.196.1",  # AS112
    "198.18.0.1",  # benchmarking
    "198.51.100.7",
    "203.0.113.9",  # documentation
    "240.0.0.1",
    "255.255.255.255",  # reserved, broadcast
    "100.100.100.200",  # Alibaba Cloud metadata
    "169.254.170.2",  # AWS ECS credentials
    "fd00:ec2::254",  # AWS metadata over IPv6
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
    "2001::1",  # Teredo
    "2001:1::1",  # PCP anycast
    "2001:20::1",  # ORCHIDv2
    "2620:4f:8000::1",  # AS112
    "3fff::1",  # documentation (2024)
    "5f00::1",  # SRv6 SIDs
    "100::1",  # discard-only
    "64:ff9b:1::808:808",  # local-use NAT64
    "4000::1",  # outside 2000::/3: not allocated for global unicast
    "fec0::1",  # deprecated site-local
    "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert NetworkPolicy().address_allowed("example.com", address)


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_addresses_are_refused_by_default(address: str) -> None:
    assert not NetworkPolicy().address_allowed("example.com", address)


def test_allow_list_by_ip_cidr_and_name() -> None:
    policy = NetworkPolicy.allowing("127.0.0.1", "10.0.0.0/8", "Internal.Example.", "::1")
    assert policy.address_allowed("x", "127.0.0.1")
    assert policy.address_allowed("x", "::ffff:127.0.0.1")  # the mapped form of an allowed address
    assert not policy.address_allowed("x", "127.0.0.2")
    assert policy.address_allowed("x", "10.9.8.7")
    assert policy.address_allowed("x", "::1")
    assert not policy.address_allowed("x", "169.254.169.254")
    # an allowed host name may resolve to anything
    assert policy.address_allowed("internal.example", "192.168.1.1")
    assert policy.address_allowed("INTERNAL.example.", "192.168.1.1")
    assert not policy.address_allowed("other.example", "192.168.1.1")


def test_from_env() -> None:
    policy = NetworkPolicy.from_env({ALLOW_HOSTS_ENV: " 127.0.0.1 , localhost,,10.0.0.0/8 "})
    assert policy.allowed_hosts == frozenset({"localhost"})
    assert {str(n) for n in policy.allowed_networks} == {"127.0.0.1/32", "10.0.0.0/8"}
    assert NetworkPolicy.from_env({}) == NetworkPolicy()


def test_cloud_metadata_needs_its_exact_address_in_the_allow_list() -> None:
    """An allowed network or name that happens to cover a metadata address does not allow it."""
    broad = NetworkPolicy.allowing("169.254.0.0/16", "fd00::/8", "100.64.0.0/10", "metadata.internal")
    assert broad.address_allowed("x", "169.254.1.1")
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"):
        assert not broad.address_allowed("x", address), address
    assert not broad.address_allowed("metadata.internal", "169.254.169.254")
    exact = NetworkPolicy.allowing("169.254.169.254", "168.63.129.16:80")
    assert exact.address_allowed("x", "169.254.169.254")
    assert exact.address_allowed("x", "168.63.129.16", 80) and not exact.address_allowed(
        "x", "168.63.129.16", 443
    )


def test_allow_list_entries_may_name_one_port() -> None:
    policy = NetworkPolicy.from_env(
        {ALLOW_HOSTS_ENV: "127.0.0.1:8080, [::1]:9000, Dev.Local.:8443, 10.0.0.5"}
    )
    assert policy.address_allowed("127.0.0.1", "127.0.0.1", 8080)
    assert not policy.address_allowed("127.0.0.1", "127.0.0.1", 8081)
    assert not policy.address_allowed("127.0.0.1", "127.0.0.1")  # the port is unknown: not this entry
    assert policy.address_allowed("::1", "::1", 9000) and not policy.address_allowed("::1", "::1", 9001)
    assert policy.address_allowed("x", "::ffff:127.0.0.1", 8080)  # the mapped form of the address
    assert policy.address_allowed("dev.local", "192.168.1.9", 8443)
    assert not policy.address_allowed("dev.local", "192.168.1.9", 22)
    assert policy.address_allowed("x", "10.0.0.5", 22)  # a plain entry still allows every port
    policy.check_url("http://127.0.0.1:8080/mcp")
    with pytest.raises(NetworkPolicyError) as info:
        policy.check_url("http://127.0.0.1:8081/mcp")
    assert f"{ALLOW_HOSTS_ENV}=127.0.0.1:8081" in str(info.value)  # the hint names the entry to add
    assert "127.0.0.1:8080" in repr(policy)


async def test_a_host_with_a_port_allows_that_port_only_at_connect_time() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["192.168.1.9"]

    policy = NetworkPolicy.allowing("dev.local:8443", resolver=resolver)
    assert await policy.resolve("dev.local", 8443) == ["192.168.1.9"]
    with pytest.raises(NetworkPolicyError, match="dev.local:22"):
        await policy.resolve("dev.local", 22)


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:65536", "host:http", "[::1]:x", ":8080"])
def test_allow_list_ports_must_be_ports(entry: str) -> None:
    with pytest.raises(InvalidUrlError, match=ALLOW_HOSTS_ENV):
        NetworkPolicy.from_env({ALLOW_HOSTS_ENV: entry})


@pytest.mark.parametrize("entry", ["http://x", "a b", "user@host", "x/y/z", "10.0.0.0/8:443"])
def test_from_env_rejects_garbage(entry: str) -> None:
    with pytest.raises(InvalidUrlError, match=ALLOW_HOSTS_ENV):
        NetworkPolicy.from_env({ALLOW_HOSTS_ENV: entry})


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/",
        "http://10.0.0.1/",
        "https://10.0.0.1/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://100.64.0.1/",
        "https://[::ffff:127.0.0.2]:8443/",
    ],
)
def test_check_url_refuses_internal_literals(url: str) -> None:
    with pytest.raises(NetworkPolicyError) as info:
        NetworkPolicy().check_url(url)
    assert ALLOW_HOSTS_ENV in str(info.value)


def test_https_required_except_loopback() -> None:
    policy = NetworkPolicy.allowing("127.0.0.1", "localhost", "10.0.0.5")
    policy.check_url("http://127.0.0.1:8000/mcp")
    policy.check_url("http://localhost:8000/mcp")
    policy.check_url("https://10.0.0.5/mcp")
    with pytest.raises(NetworkPolicyError, match="https is required"):
        policy.check_url("http://10.0.0.5/mcp")
    with pytest.raises(NetworkPolicyError, match="https is required"):
        policy.check_url("http://example.com/mcp")
    with pytest.raises(InvalidUrlError):
        policy.check_url("ftp://example.com/")
    with pytest.raises(InvalidUrlError):
        policy.check_url("file:///etc/passwd")


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "a.localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "localhost.example.com", "2130706433"])
def test_not_loopback_hosts(host: str) -> None:
    assert not is_loopback_host(host)


async def test_resolve_filters_and_refuses() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"mixed.test": ["10.0.0.1", "8.8.8.8"], "private.test": ["10.0.0.1", "192.168.0.1"]}[host]

    policy = NetworkPolicy(resolver=resolver)
    assert await policy.resolve("mixed.test", 443) == ["8.8.8.8"]
    with pytest.raises(NetworkPolicyError) as info:
        await policy.resolve("private.test", 443)
    assert "private.test (10.0.0.1)" in str(info.value)
    assert ALLOW_HOSTS_ENV in str(info.value)


async def test_resolve_numeric_spellings_with_the_system_resolver() -> None:
    """getaddrinfo accepts 2130706434, 0x7f000002 and 127.2; ipaddress does not. The resolved
    address is what gets checked."""
    policy = NetworkPolicy.allowing("127.0.0.1")
    for host in ("2130706434", "0x7f000002", "127.2"):
        with pytest.raises(NetworkPolicyError, match="127.0.0.2"):
            await policy.resolve(host, 443)
    assert await policy.resolve("2130706433", 443) == ["127.0.0.1"]


def _interpreters() -> dict[str, str]:
    """Working Python 3.12 and 3.13 executables: this one, pyenv's, those on PATH (a pyenv shim on
    PATH may refuse to run, so each candidate must say which version it is)."""
    found = {f"{sys.version_info[0]}.{sys.version_info[1]}": sys.executable}
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.12", "3.13"):
        candidates = sorted(glob.glob(f"{pyenv_root}/versions/{minor}.*/bin/python3"))
        candidates.append(shutil.which(f"python{minor}") or "")
        for candidate in candidates:
            if minor in found or not candidate:
                continue
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0 and probe.stdout.strip() == minor:
                found[minor] = candidate
    return found


def test_the_address_policy_is_the_same_on_python_3_12_and_3_13() -> None:
    """Issue 16 (4): the policy must not depend on the Python version (its `is_global` tables changed
    between releases). The decisions are computed in this interpreter and in a bare 3.12 and 3.13
    (`core.net.policy` needs only the standard library), and must all equal the table above."""
    interpreters = _interpreters()
    missing = {"3.12", "3.13"} - set(interpreters)
    assert not missing, (
        f"no Python {', '.join(sorted(missing))} to check the address policy on (pyenv install it)"
    )
    expected = {a: True for a in PUBLIC} | {a: False for a in REFUSED}
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from core.net.policy import NetworkPolicy; "
        "print(json.dumps({a: NetworkPolicy().address_allowed('example.com', a) for a in sys.argv[2:]}))"
    )
    root = str(Path(__file__).resolve().parents[1])
    for minor, python in sorted(interpreters.items()):
        completed = subprocess.run(
            [python, "-I", "-c", script, root, *expected],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert completed.returncode == 0, f"Python {minor}: {completed.stderr[-2000:]}"
        decided = json.loads(completed.stdout)
        wrong = {a: decided[a] for a in expected if decided[a] != expected[a]}
        assert not wrong, f"Python {minor} ({python}) decided differently: {wrong}"


# --- connect-time enforcement: the trap listener --------------------------------------------------


class Listener:
    """A TCP listener that counts connections and answers any request with a fixed response."""

    def __init__(self, response: bytes = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n") -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.response = response
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, ssl=ssl_context)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            writer.write(self.response)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def good_and_trap() -> AsyncIterator[tuple[Listener, Listener, int]]:
    """`good` on 127.0.0.1:P and `trap` on 127.0.0.2:P (the same port)."""
    good, trap = Listener(), Listener()
    port = await good.start("127.0.0.1")
    await trap.start("127.0.0.2", port)
    yield good, trap, port
    await good.stop()
    await trap.stop()
    await aclose_shared_clients()


async def test_trap_gets_zero_connections(good_and_trap: tuple[Listener, Listener, int]) -> None:
    good, trap, port = good_and_trap
    client = shared_http_client(NetworkPolicy.allowing("127.0.0.1"))
    response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 204
    assert good.connections == 1

    for url in (
        f"http://127.0.0.2:{port}/",
        f"https://127.0.0.2:{port}/",
        f"https://2130706434:{port}/",
        f"https://0x7f000002:{port}/",
        f"https://127.2:{port}/",
        f"https://[::ffff:127.0.0.2]:{port}/",
        f"http://[::ffff:127.0.0.2]:{port}/",
    ):
        with pytest.raises(NetworkPolicyError) as info:
            await client.get(url)
        assert ALLOW_HOSTS_ENV in str(info.value), url
    assert trap.connections == 0


async def test_allowing_one_local_server_does_not_open_its_other_ports() -> None:
    """Issue 16 (4): `SWITCHBOARD_ALLOW_HOSTS=127.0.0.1:P` reaches the server on P and nothing else on
    that host, by address or by a name that resolves to it."""
    allowed, other = Listener(), Listener()
    port = await allowed.start("127.0.0.1")
    other_port = await other.start("127.0.0.1")
    try:
        policy = NetworkPolicy.from_env({ALLOW_HOSTS_ENV: f"127.0.0.1:{port}"})
        async with create_http_client(policy) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 204
            assert (await client.get(f"http://localhost:{port}/")).status_code == 204
            for url in (f"http://127.0.0.1:{other_port}/", f"http://localhost:{other_port}/"):
                with pytest.raises(NetworkPolicyError):
                    await client.get(url)
        assert allowed.connections == 2 and other.connections == 0
    finally:
        await allowed.stop()
        await other.stop()


async def test_redirect_to_trap_is_not_followed(good_and_trap: tuple[Listener, Listener, int]) -> None:
    good, trap, port = good_and_trap
    good.response = (
        f"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{port}/\r\ncontent-length: 0\r\n\r\n".encode()
    )
    client = create_http_client(NetworkPolicy.allowing("127.0.0.1"))
    async with client:
        response = await client.get(f"http://127.0.0.1:{port}/")
        assert response.status_code == 302  # returned, not followed
        # a caller that follows it sends a new request, which is checked again
        with pytest.raises(NetworkPolicyError):
            await client.get(response.headers["location"])
        # even with httpx's own redirect following switched on per request
        with pytest.raises(NetworkPolicyError):
            await client.get(f"http://127.0.0.1:{port}/", follow_redirects=True)
    assert trap.connections == 0


async def test_dns_rebinding_is_caught_at_connect_time(good_and_trap: tuple[Listener, Listener, int]) -> None:
    """The first lookup says 127.0.0.1 (allowed), the second 127.0.0.2: the second connection is
    refused, because the check runs on every resolution and we connect to the checked address."""
    good, trap, port = good_and_trap
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2", "127.0.0.1"]])

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        assert host == "rebind.localhost"
        return next(answers)

    policy = NetworkPolicy.allowing("127.0.0.1", resolver=rebinding_resolver)
    url = f"http://rebind.localhost:{port}/"
    async with create_http_client(policy) as client:
        assert (await client.get(url)).status_code == 204
    async with create_http_client(policy) as client:  # fresh pool: a new connection, a new lookup
        with pytest.raises(NetworkPolicyError):
            await client.get(url)
    async with create_http_client(policy) as client:  # mixed answer: only the allowed address is used
        assert (await client.get(url)).status_code == 204
    assert trap.connections == 0
    assert good.connections == 2
    # the Host header still names the host, not the address we connected to
    assert all(b"host: rebind.localhost:" in req.lower() for req in good.requests)


async def test_tls_keeps_the_host_name_for_sni_and_verification() -> None:
    """We connect to the checked IP, but TLS verifies the certificate for the host name."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    listener = Listener()
    port = await listener.start("127.0.0.1", ssl_context=server_ctx)
    try:
        policy = NetworkPolicy.allowing("localhost")
        async with create_http_client(policy, verify=client_ctx) as client:
            response = await client.get(f"https://localhost:{port}/")
        assert response.status_code == 204
        # an untrusted CA fails the handshake; there is no fallback (S-13)
        async with create_http_client(policy) as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"https://localhost:{port}/")
    finally:
        await listener.stop()


async def test_shared_client_is_one_per_loop_and_policy() -> None:
    a = NetworkPolicy.allowing("127.0.0.1")
    first = shared_http_client(a)
    assert shared_http_client(NetworkPolicy.allowing("127.0.0.1")) is first
    other = shared_http_client(NetworkPolicy.allowing("localhost"))
    assert other is not first
    assert first.follow_redirects is False
    await aclose_shared_clients()
    assert first.is_closed
    assert shared_http_client(a) is not first
    await aclose_shared_clients()


async def test_shared_client_default_policy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ALLOW_HOSTS_ENV, "127.0.0.1")
    client = shared_http_client()
    assert client is shared_http_client(NetworkPolicy.allowing("127.0.0.1"))
    await aclose_shared_clients()


async def test_no_proxy_from_environment(monkeypatch: pytest.MonkeyPatch, good_and_trap) -> None:
    """A proxy would connect on our behalf and defeat the address check: env proxies are ignored."""
    _good, trap, port = good_and_trap
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.2:{port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.2:{port}")
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 204
    assert trap.connections == 0


async def test_unix_sockets_refused() -> None:
    from core.net.client import PolicyNetworkBackend

    with pytest.raises(NetworkPolicyError):
        await PolicyNetworkBackend(NetworkPolicy()).connect_unix_socket("/tmp/x.sock")


# --- the asyncio network stream under httpcore -----------------------------------------------------


class HttpServer:
    """A tiny HTTP/1.1 server for stream behaviour: keep-alive, big bodies, silence, early close."""

    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.never = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split()[1]
                length = next(
                    (int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")),
                    0,
                )
                body = await reader.readexactly(length)
                self.bodies.append(body)
                if path == "/silent":
                    await self.never.wait()
                if path == "/big":
                    size = 8 << 20
                    writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode())
                    for _ in range(size // 65536):
                        writer.write(b"b" * 65536)
                        await writer.drain()
                    continue
                payload = str(len(body)).encode()
                close = path == "/close"
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[HttpServer, str]]:
    server = HttpServer()
    port = await server.start()
    yield server, f"http://127.0.0.1:{port}"
    server.never.set()
    await server.stop()


async def test_keep_alive_reuses_one_connection(http_server: tuple[HttpServer, str]) -> None:
    server, base = http_server
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        for i in range(5):
            response = await client.post(f"{base}/echo", content=b"x" * i)
            assert response.text == str(i)
    assert server.connections == 1


async def test_a_connection_the_server_closed_is_not_reused(http_server: tuple[HttpServer, str]) -> None:
    server, base = http_server
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        assert (await client.post(f"{base}/close", content=b"ab")).text == "2"
        await asyncio.sleep(0.05)  # let the FIN arrive; the pool must notice it
        assert (await client.post(f"{base}/echo", content=b"abc")).text == "3"
    assert server.connections == 2


async def test_large_request_and_response_bodies(http_server: tuple[HttpServer, str]) -> None:
    server, base = http_server
    upload = bytes(range(256)) * 8192  # 2 MiB: more than the write cork holds
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        assert (await client.post(f"{base}/echo", content=upload)).text == str(len(upload))
        assert server.bodies[-1] == upload
        received = 0
        async with client.stream("GET", f"{base}/big") as response:
            async for chunk in response.aiter_raw():
                received += len(chunk)
        assert received == 8 << 20


async def test_read_timeout(http_server: tuple[HttpServer, str]) -> None:
    _, base = http_server
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(f"{base}/silent", timeout=httpx2.Timeout(5.0, read=0.1))


async def test_connection_refused_is_a_connect_error() -> None:
    listener = Listener()
    port = await listener.start("127.0.0.1")
    await listener.stop()  # nothing listens there any more
    async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_mcp_client_never_reaches_the_trap(
    good_and_trap: tuple[Listener, Listener, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through McpClient and the shared pool: internal spellings are refused before any
    connection, and a redirect from an allowed server is reported, not followed."""
    from core.errors import HttpStatusError
    from core.mcp.client import McpClient

    good, trap, port = good_and_trap
    monkeypatch.setenv(ALLOW_HOSTS_ENV, "127.0.0.1")
    for url in (
        f"http://127.0.0.2:{port}/mcp",
        f"https://2130706434:{port}/mcp",
        f"https://0x7f000002:{port}/mcp",
        f"https://[::ffff:127.0.0.2]:{port}/mcp",
        f"http://169.254.169.254:{port}/mcp",
    ):
        with pytest.raises(NetworkPolicyError):
            await McpClient(url, era="legacy").connect()
    good.response = (
        f"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.2:{port}/mcp\r\n"
        "content-length: 0\r\n\r\n"
    ).encode()
    with pytest.raises(HttpStatusError) as info:
        await McpClient(f"http://127.0.0.1:{port}/mcp", era="legacy").connect()
    assert info.value.status == 307 and "not followed" in str(info.value)
    assert trap.connections == 0


@pytest.mark.parametrize("address", ["::7f00:1", "::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", "64:ff9b:1::7f00:1"])
def test_ipv6_forms_embedding_a_private_ipv4_are_refused(address):
    assert not NetworkPolicy.allowing().address_allowed("example.test", address)
