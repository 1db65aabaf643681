"""Which IP addresses are public: explicit tables, the same answer on every Python version.

`ipaddress.IPv4Address.is_global` and friends follow whichever IANA registry snapshot the running
Python shipped with, and unwrap only some IPv6 forms: on 3.12.1 `192.0.0.192` (an Oracle Cloud
metadata address), `::ffff:0:7f00:1` (127.0.0.1, IPv4-translated) and `168.63.129.16` (the Azure host
agent) all count as global. So the policy does not ask `ipaddress`; it checks these tables:

* every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and later
  entries, as of 2025), plus multicast, the deprecated IPv6 site-local range, and any IPv6 address
  outside 2000::/3 (the only space IANA allocates for global unicast). The few registry blocks marked
  globally reachable (anycast relays, AS112, ORCHIDv2) are refused too: no MCP server lives there;
* well-known cloud metadata and host-agent addresses (`CLOUD_METADATA`), some of them public
  addresses, refused even when an allowed network covers them (only listing the exact address in
  `SWITCHBOARD_ALLOW_HOSTS` allows one);
* IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped `::ffff:0:0/96`,
  IPv4-translated `::ffff:0:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and 6to4
  `2002::/16`.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["CLOUD_METADATA", "IPAddress", "embedded_ipv4", "is_public", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# IANA IPv4 Special-Purpose Address Registry, plus multicast (224.0.0.0/4).
_IPV4_REFUSED: Final = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private use
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local
    "172.16.0.0/12",  # private use
    "192.0.0.0/24",  # IETF protocol assignments (incl. 192.0.0.9, .10 anycast)
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.31.196.0/24",  # AS112-v4
    "192.52.193.0/24",  # AMT
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private use
    "192.175.48.0/24",  # direct delegation AS112
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 limited broadcast
)

# IANA IPv6 Special-Purpose Address Registry inside 2000::/3 (everything outside it is refused
# anyway: ::1, ::, 100::/64, 100:0:0:1::/64, 64:ff9b:1::/48, 5f00::/16, fc00::/7, fe80::/10,
# fec0::/10, ff00::/8 ...).
_IPV6_REFUSED: Final = _networks(
    "2001::/23",  # IETF protocol assignments (Teredo 2001::/32, benchmarking, ORCHID, AMT, AS112 ...)
    "2001:db8::/32",  # documentation
    "2620:4f:8000::/48",  # direct delegation AS112
    "3fff::/20",  # documentation
)
_IPV6_GLOBAL_UNICAST: Final = ipaddress.ip_network("2000::/3")

# IPv6 prefixes whose last 32 bits are an IPv4 address.
_IPV4_IN_LAST_32_BITS: Final = _networks(
    "::ffff:0:0/96",  # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
    "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
    "::/96",  # IPv4-compatible (deprecated), except :: and ::1
)
_SIX_TO_FOUR: Final = ipaddress.ip_network("2002::/16")  # IPv4 in bits 16-47

#: Cloud instance-metadata and host-agent endpoints: credentials for the machine we run on.
CLOUD_METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, Azure, GCP, DigitalOcean, OpenStack ... instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "168.63.129.16",  # Azure WireServer / host agent (a public address)
        "100.100.100.200",  # Alibaba Cloud instance metadata
        "192.0.0.192",  # Oracle Cloud instance metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fe80::a9fe:a9fe",  # OpenStack metadata over IPv6
    )
)


def parse_ip(text: str) -> IPAddress | None:
    """The IP address `text` spells (brackets allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (see the module docstring), else None."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)
    if int(addr) > 1 and any(addr in net for net in _IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_public(addr: IPAddress) -> bool:
    """Whether `addr` is a public unicast address we may connect to without being told to."""
    inner = embedded_ipv4(addr)
    if inner is not None:
        return is_public(inner)
    if addr in CLOUD_METADATA:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        return not any(addr in net for net in _IPV4_REFUSED)
    return addr in _IPV6_GLOBAL_UNICAST and not any(addr in net for net in _IPV6_REFUSED)
