"""Outbound network policy: the SSRF guard every request from `core` passes through.

Rules (MCP Security Best Practices §SSRF, RFC 9728 §7.7):

* `https` only, except to loopback (a local development server).
* Public (globally routable) addresses are allowed. Loopback, private, link-local, CGNAT,
  unique-local, multicast, unspecified, documentation and every other non-global address is refused
  unless the operator allows it in `SWITCHBOARD_ALLOW_HOSTS` (comma-separated host names, IP
  addresses or CIDR networks, e.g. `127.0.0.1,localhost,10.0.0.0/8`).
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

from core.errors import InvalidUrlError, NetworkPolicyError

__all__ = ["ALLOW_HOSTS_ENV", "NetworkPolicy", "Resolver", "is_loopback_host"]

ALLOW_HOSTS_ENV = "SWITCHBOARD_ALLOW_HOSTS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: `async resolver(host, port) -> list of IP address strings`; injectable for tests (DNS rebinding).
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv6 ranges whose last 32 bits are an IPv4 address: NAT64 (RFC 6052), local-use NAT64 (RFC 8215)
# and the deprecated IPv4-compatible form (::a.b.c.d).
_IPV4_EMBEDDING = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
)


def _parse_ip(host: str) -> IPAddress | None:
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, IPv4-compatible), else the
    address itself.

    `ip_address("::ffff:127.0.0.1").is_loopback` is False, so the mapped form must be unwrapped
    before any range check.
    """
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if any(addr in net for net in _IPV4_EMBEDDING) and int(addr) > 1:  # not :: nor ::1
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, `*.localhost` and loopback IP literals (mapped forms included)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    addr = _parse_ip(host)
    return addr is not None and _embedded_ipv4(addr).is_loopback


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

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver | None = field(default=None, compare=True, repr=False)

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NetworkPolicy:
        """The policy configured by `SWITCHBOARD_ALLOW_HOSTS` (empty: public https hosts only)."""
        env = os.environ if environ is None else environ
        return cls.allowing(*(env.get(ALLOW_HOSTS_ENV, "") or "").split(","))

    @classmethod
    def allowing(cls, *entries: str, resolver: Resolver | None = None) -> NetworkPolicy:
        """A policy that also allows the given host names, IP addresses and CIDR networks."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".").lower()
            if any(c in name for c in "/:@ ") or not name.isascii():
                raise InvalidUrlError(
                    f"{ALLOW_HOSTS_ENV} entry {entry!r} is neither a host name, an IP address nor a CIDR network"
                )
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks), resolver)

    def with_resolver(self, resolver: Resolver | None) -> NetworkPolicy:
        return NetworkPolicy(self.allowed_hosts, self.allowed_networks, resolver)

    # --- checks ---------------------------------------------------------------------------------

    def check_url(self, url: Any) -> None:
        """Refuse a URL before anything is sent: wrong scheme, credentials in it, plain http off
        loopback, or an IP literal that is not allowed. Host names are checked at connect time."""
        text = str(url)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in ("https", "http"):
            raise InvalidUrlError(f"unsupported URL scheme {scheme or '(none)'!r}; use https://")
        if not host:
            raise InvalidUrlError("URL has no host")
        addr = _parse_ip(host)
        if addr is not None and not self.address_allowed(host, addr):
            raise self._refusal(host, str(addr))
        if scheme == "http" and not is_loopback_host(host):
            raise NetworkPolicyError(
                f"refusing plain http to {host}: https is required except for loopback",
                hint="use an https:// URL",
            )

    def host_allowed_by_name(self, host: str) -> bool:
        return host.strip("[]").rstrip(".").lower() in self.allowed_hosts

    def address_allowed(self, host: str, addr: IPAddress | str) -> bool:
        """May we connect to `addr`, which `host` resolved to?"""
        if isinstance(addr, str):
            parsed = _parse_ip(addr)
            if parsed is None:
                return False
            addr = parsed
        if self.host_allowed_by_name(host):
            return True
        inner = _embedded_ipv4(addr)
        for net in self.allowed_networks:
            if addr in net or inner in net:
                return True
        # Public means globally routable for both the address and what it embeds; multicast never.
        return inner.is_global and addr.is_global and not inner.is_multicast and not addr.is_multicast

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve `host` and return only the addresses the policy allows (in resolver order).

        Raises `NetworkPolicyError` when none is allowed. The caller must connect to one of the
        returned addresses, never to `host` again (that would resolve a second time).
        """
        literal = _parse_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            resolver = self.resolver or _system_resolver
            try:
                addresses = await resolver(host, port)
            except OSError as exc:
                from core.errors import ConnectError

                raise ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        allowed = [a for a in addresses if self.address_allowed(host, a)]
        if not allowed:
            shown = addresses[0] if addresses else "no address"
            raise self._refusal(host, shown)
        return allowed

    def _refusal(self, host: str, address: str) -> NetworkPolicyError:
        where = host if host == address else f"{host} ({address})"
        return NetworkPolicyError(
            f"refusing to connect to {where}: not a public address and not allowed by {ALLOW_HOSTS_ENV}",
            hint=f"to allow a local or private server set {ALLOW_HOSTS_ENV}={host}",
        )

    def __repr__(self) -> str:
        entries = sorted(self.allowed_hosts) + [str(n) for n in self.allowed_networks]
        return f"NetworkPolicy(allow={entries!r})"
