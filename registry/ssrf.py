"""Which network addresses the gateway may connect to on a registrant's behalf.

Card URLs, JWKS URLs on cards, health probes (and later webhook and MCP server
URLs) are chosen by whoever registers an agent, so they are attacker input.
This module is pure: it classifies a URL's host and the addresses it resolved
to. `registry.fetch` resolves DNS itself, applies this policy to *every*
address, then connects to the address it checked (so a second DNS answer cannot
swap in another one), and does it again on every redirect hop.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance-metadata endpoints. They hand out credentials, so no setting,
# not even an explicit operator allowlist, makes them reachable.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IPv6
        "fd00:ec2::23",  # AWS IPv6 DNS
    )
)
# Link-local is where metadata lives and where no registered agent should.
NEVER_ALLOWED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# inet_aton(3) accepts 1-4 dot-separated parts, each decimal, octal (leading 0)
# or hex (0x): "2130706433", "0x7f.1", "0177.0.0.1" all mean 127.0.0.1. Only the
# canonical dotted quad is accepted; every other numeric spelling is refused
# outright, whatever it resolves to, because it exists mostly to dodge filters.
_INET_ATON_PART = r"(?:0[xX][0-9a-fA-F]*|[0-9]+)"
_NUMERIC_HOST = re.compile(rf"^{_INET_ATON_PART}(?:\.{_INET_ATON_PART}){{0,3}}\.?$")


class AddressRefused(ValueError):
    """The URL or address may not be contacted; ``str()`` says why."""


@dataclass(frozen=True)
class AddressPolicy:
    """Operator choices layered over the hard rules.

    ``allow_loopback`` is what ``--dev`` turns on so agents on the same machine
    can register; ``allowed_networks`` are CIDRs an operator opened explicitly
    (e.g. the private range their agents live in).
    """

    allow_loopback: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str], *, allow_loopback: bool = False) -> AddressPolicy:
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        return cls(allow_loopback=allow_loopback, allowed_networks=networks)

    def check_address(self, address: IPAddress) -> None:
        """Raise `AddressRefused` unless ``address`` may be contacted."""
        for candidate in _embedded_addresses(address):
            self._check_one(candidate, shown=address)

    def _check_one(self, ip: IPAddress, *, shown: IPAddress) -> None:
        if ip in METADATA_ADDRESSES:
            raise AddressRefused(f"{shown} is a cloud metadata address")
        if ip.is_link_local or any(ip in net for net in NEVER_ALLOWED_NETWORKS):
            raise AddressRefused(f"{shown} is link-local")
        if ip.is_loopback and self.allow_loopback:
            return
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return
        reason = _forbidden_reason(ip)
        if reason:
            raise AddressRefused(f"{shown} is {reason} (not allowed by ssrf_allow_cidrs)")

    def check_host(self, host: str) -> IPAddress | None:
        """Validate a URL host's spelling; return its address when it is an IP literal.

        Hostnames return None and must be resolved, then each address checked.
        """
        if not host:
            raise AddressRefused("the URL has no host")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if "%" in bare:
            raise AddressRefused(f"{host}: IPv6 zone identifiers are not allowed")
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            if _NUMERIC_HOST.match(bare):
                raise AddressRefused(
                    f"{host} is a non-canonical numeric address spelling"
                ) from None
            return None
        self.check_address(address)
        return address


def _embedded_addresses(address: IPAddress) -> list[IPAddress]:
    """The address itself plus any IPv4 address an IPv6 form tunnels to.

    ``::ffff:127.0.0.1`` (mapped), ``64:ff9b::7f00:1`` (NAT64), ``2002:7f00:1::``
    (6to4) and Teredo all reach an IPv4 host; each embedded address must pass too.
    """
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
    return found


def _forbidden_reason(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a globally routable address"
    return None
