"""Outbound network policy: the SSRF guard every request from `core` passes through.

Rules (MCP Security Best Practices §SSRF, RFC 9728 §7.7):

* `https` only, except to loopback (a local development server).
* Public addresses are allowed; what is public is decided by explicit tables (the IANA
  special-purpose registries, cloud metadata addresses: `core.net.addresses`), never by the running
  Python's `ipaddress.is_global`. Everything else (loopback, private, link-local, CGNAT, unique-local,
  multicast, documentation, reserved ...) is refused unless the operator allows it in
  `SWITCHBOARD_ALLOW_HOSTS`: comma-separated host names, IP addresses or CIDR networks, each name or
  address optionally with a port (`127.0.0.1:8080`, `[::1]:8080`, `mcp.internal:8443`) so that
  allowing one local server does not open every port on its host. Cloud metadata addresses stay
  refused inside an allowed network or behind an allowed name; only the exact address allows one.
* The check runs on the addresses the name RESOLVES to, at connect time, and the connection goes to
  the address that was checked (see `PolicyNetworkBackend`), so DNS rebinding between check and
  use and alternative spellings (`2130706433`, `0x7f000001`, `127.1`, `[::ffff:127.0.0.1]`) cannot
  slip through. TLS SNI and the Host header still carry the host name.
* Redirects are never followed automatically; a caller that follows one sends a new request, which
  is checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConnectError, InvalidUrlError, NetworkPolicyError
from core.net.addresses import CLOUD_METADATA, IPAddress, embedded_ipv4, is_public, parse_ip

__all__ = ["ALLOW_HOSTS_ENV", "NetworkPolicy", "Resolver", "is_loopback_host"]

ALLOW_HOSTS_ENV = "SWITCHBOARD_ALLOW_HOSTS"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: `async resolver(host, port) -> list of IP address strings`; injectable for tests (DNS rebinding).
Resolver = Callable[[str, int], Awaitable[list[str]]]
_DEFAULT_PORTS = {"https": 443, "http": 80}


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, `*.localhost` and loopback IP literals (IPv4 in IPv6 forms included)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    addr = parse_ip(host)
    return addr is not None and (embedded_ipv4(addr) or addr).is_loopback


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


@dataclass(frozen=True)
class NetworkPolicy:
    """Which hosts `core` may talk to. Immutable and hashable (it keys the shared client pool)."""

    allowed_hosts: frozenset[str] = frozenset()  # names, on any port
    allowed_networks: tuple[IPNetwork, ...] = ()  # addresses and networks, on any port
    allowed_endpoints: frozenset[tuple[str, int]] = frozenset()  # (name or address, port)
    resolver: Resolver | None = field(default=None, compare=True, repr=False)

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NetworkPolicy:
        """The policy configured by `SWITCHBOARD_ALLOW_HOSTS` (empty: public https hosts only)."""
        env = os.environ if environ is None else environ
        return cls.allowing(*(env.get(ALLOW_HOSTS_ENV, "") or "").split(","))

    @classmethod
    def allowing(cls, *entries: str, resolver: Resolver | None = None) -> NetworkPolicy:
        """A policy that also allows the given host names, IP addresses and CIDR networks, each name
        or address optionally with `:port` (`[address]:port` for IPv6)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        endpoints: set[tuple[str, int]] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, port = _split_port(entry)
            addr = parse_ip(host)
            name = str(addr) if addr is not None else host.rstrip(".").lower()
            if addr is None and (any(c in name for c in "/:@[] ") or not name.isascii() or not name):
                raise InvalidUrlError(
                    f"{ALLOW_HOSTS_ENV} entry {entry!r} is neither a host name, an IP address nor a CIDR "
                    "network",
                    hint="write e.g. 127.0.0.1:8080, [::1]:8080, mcp.internal, 10.0.0.0/8",
                )
            if port is not None:
                endpoints.add((name, port))
            elif addr is not None:
                networks.append(ipaddress.ip_network(addr))
            else:
                hosts.add(name)
        return cls(frozenset(hosts), tuple(networks), frozenset(endpoints), resolver)

    def with_resolver(self, resolver: Resolver | None) -> NetworkPolicy:
        return NetworkPolicy(self.allowed_hosts, self.allowed_networks, self.allowed_endpoints, resolver)

    # --- checks ---------------------------------------------------------------------------------

    def check_url(self, url: Any) -> None:
        """Refuse a URL before anything is sent: wrong scheme, credentials in it, plain http off
        loopback, or an IP literal that is not allowed. Host names are checked at connect time."""
        parts = urlsplit(str(url))
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in ("https", "http"):
            raise InvalidUrlError(f"unsupported URL scheme {scheme or '(none)'!r}; use https://")
        if not host:
            raise InvalidUrlError("URL has no host")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise InvalidUrlError(f"URL to {host} has an invalid port") from None
        addr = parse_ip(host)
        if addr is not None and not self.address_allowed(host, addr, port):
            raise self._refusal(host, str(addr), port)
        if scheme == "http" and not is_loopback_host(host):
            raise NetworkPolicyError(
                f"refusing plain http to {host}: https is required except for loopback",
                hint="use an https:// URL",
            )

    def address_allowed(self, host: str, addr: IPAddress | str, port: int | None = None) -> bool:
        """May we connect to `addr` (on `port`, when known), which `host` resolved to?"""
        if isinstance(addr, str):
            parsed = parse_ip(addr)
            if parsed is None:
                return False
            addr = parsed
        name = host.strip("[]").rstrip(".").lower()
        inner = embedded_ipv4(addr)
        forms = (addr,) if inner is None else (addr, inner)
        if port is not None and any(
            (key, port) in self.allowed_endpoints for key in (name, *map(str, forms))
        ):
            return True
        if any(form in CLOUD_METADATA for form in forms):
            # Only the exact address allows one, never a network that happens to cover it nor a name.
            return any(
                net.num_addresses == 1 and form in net for net in self.allowed_networks for form in forms
            )
        if name in self.allowed_hosts:
            return True
        if any(form in net for net in self.allowed_networks for form in forms):
            return True
        return is_public(addr)

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve `host` and return only the addresses the policy allows (in resolver order).

        Raises `NetworkPolicyError` when none is allowed. The caller must connect to one of the
        returned addresses, never to `host` again (that would resolve a second time).
        """
        literal = parse_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            resolver = self.resolver or _system_resolver
            try:
                addresses = await resolver(host, port)
            except OSError as exc:
                raise ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        allowed = [a for a in addresses if self.address_allowed(host, a, port)]
        if not allowed:
            shown = addresses[0] if addresses else "no address"
            raise self._refusal(host, shown, port)
        return allowed

    def _refusal(self, host: str, address: str, port: int) -> NetworkPolicyError:
        where = host if host == address else f"{host} ({address})"
        entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return NetworkPolicyError(
            f"refusing to connect to {where}: not a public address and not allowed by {ALLOW_HOSTS_ENV}",
            hint=f"to allow this local or private server set {ALLOW_HOSTS_ENV}={entry}",
        )

    def __repr__(self) -> str:
        entries = sorted(self.allowed_hosts) + [str(n) for n in self.allowed_networks]
        entries += sorted(f"{h}:{p}" for h, p in self.allowed_endpoints)
        return f"NetworkPolicy(allow={entries!r})"


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host:port` / `[v6]:port` / `host` -> (host, port or None); a bad port is an error."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return entry, None  # not an address with a port: reported as a bad entry by the caller
        text = rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
    else:
        return entry, None
    if text is None:
        return host, None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidUrlError(f"{ALLOW_HOSTS_ENV} entry {entry!r} has an invalid port", hint="use 1-65535")
    return host, int(text)
