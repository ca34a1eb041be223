"""`registry.ssrf.AddressPolicy`: which URL hosts the gateway may contact."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from registry.ssrf import METADATA_ADDRESSES, AddressPolicy, AddressRefused

DEFAULT = AddressPolicy()

# URL hosts (as they appear between "//" and the port) that a default policy refuses.
REFUSED_HOSTS = [
    # loopback, canonical and every non-canonical inet_aton spelling
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "017700000001",
    # unspecified
    "0.0.0.0",
    "0",
    "[::1]",
    "[::]",
    # IPv6 forms that tunnel to IPv4 loopback
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:0001::]",
    # private / shared ranges
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    # metadata and link-local
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "[fe80::1]",
    "[fe80::1%eth0]",
    # multicast, broadcast, reserved, benchmarking, ULA
    "224.0.0.1",
    "255.255.255.255",
    "192.0.0.192",
    "198.18.0.1",
    "[fc00::1]",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_default_policy_refuses(host: str) -> None:
    with pytest.raises(AddressRefused) as info:
        DEFAULT.check_host(host)
    assert str(info.value)  # the reason is always spelled out


@pytest.mark.parametrize(
    "host",
    ["127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "0"],
)
def test_non_canonical_spellings_are_refused_as_such(host: str) -> None:
    # Refused for the spelling itself, even under a policy that admits loopback.
    with pytest.raises(AddressRefused, match="non-canonical"):
        AddressPolicy(allow_loopback=True).check_host(host)


@pytest.mark.parametrize("host", ["[fe80::1%eth0]", "fe80::1%eth0", "[::1%lo]", "[fe80::1%25eth0]"])
def test_zone_identifiers_are_refused(host: str) -> None:
    with pytest.raises(AddressRefused, match="zone"):
        AddressPolicy(allow_loopback=True).check_host(host)


def test_empty_host_is_refused() -> None:
    with pytest.raises(AddressRefused, match="no host"):
        DEFAULT.check_host("")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("8.8.8.8", ipaddress.ip_address("8.8.8.8")),
        ("1.1.1.1", ipaddress.ip_address("1.1.1.1")),
        ("[2606:4700:4700::1111]", ipaddress.ip_address("2606:4700:4700::1111")),
        ("2606:4700:4700::1111", ipaddress.ip_address("2606:4700:4700::1111")),
    ],
)
def test_public_literals_are_accepted(host: str, expected: ipaddress.IPv4Address) -> None:
    assert DEFAULT.check_host(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "agents.example.org",
        "localhost",  # a name: resolved later, each answer checked then
        "cafe.example",
        "a1.example",
        "deadbeef.com",
        "0x7f.example",
        "123.example",
        "1e100.net",
        "xn--bcher-kva.example",
    ],
)
def test_hostnames_are_left_to_resolution(host: str) -> None:
    assert DEFAULT.check_host(host) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])
def test_check_address_accepts_public(address: str) -> None:
    DEFAULT.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", sorted(str(a) for a in METADATA_ADDRESSES))
def test_every_metadata_address_is_refused_under_any_policy(address: str) -> None:
    wide_open = AddressPolicy.from_cidrs(
        ["10.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "fd00::/8"], allow_loopback=True
    )
    for policy in (DEFAULT, wide_open):
        with pytest.raises(AddressRefused, match="metadata"):
            policy.check_address(ipaddress.ip_address(address))


def test_teredo_embedding_is_checked() -> None:
    # Teredo 2001::/32 with server 65.54.227.120 and client (obfuscated) 192.168.1.1.
    client = ipaddress.IPv4Address(int(ipaddress.IPv4Address("192.168.1.1")) ^ 0xFFFFFFFF)
    server = ipaddress.IPv4Address("65.54.227.120")
    teredo = ipaddress.IPv6Address((0x20010000 << 96) | (int(server) << 64) | int(client))
    assert teredo.teredo == (server, ipaddress.IPv4Address("192.168.1.1"))
    with pytest.raises(AddressRefused):
        DEFAULT.check_address(teredo)
    # The same shape pointing at public hosts only is not refused for the embedding
    # (2001::/32 itself is not globally routable, so an allowlist has to open it).
    public_client = ipaddress.IPv4Address(int(ipaddress.IPv4Address("8.8.8.8")) ^ 0xFFFFFFFF)
    public = ipaddress.IPv6Address((0x20010000 << 96) | (int(server) << 64) | int(public_client))
    AddressPolicy.from_cidrs(["2001::/32"]).check_address(public)


# --- operator options -------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "127.0.0.2", "::1"])
def test_allow_loopback_admits_loopback(host: str) -> None:
    address = AddressPolicy(allow_loopback=True).check_host(host)
    assert address is not None
    assert address.is_loopback


def test_allow_loopback_does_not_open_mapped_loopback() -> None:
    # The IPv4-mapped form is refused for being in ::ffff:0:0/96 itself (conservative).
    with pytest.raises(AddressRefused):
        AddressPolicy(allow_loopback=True).check_host("[::ffff:127.0.0.1]")


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[fe80::1]",
        "10.0.0.1",
        "100.100.100.200",
        "[fd00:ec2::254]",
        "169.254.1.1",
        "0.0.0.0",
        "[::]",
        "192.168.1.1",
    ],
)
def test_allow_loopback_admits_nothing_else(host: str) -> None:
    with pytest.raises(AddressRefused):
        AddressPolicy(allow_loopback=True).check_host(host)


def test_allowlist_admits_only_its_networks() -> None:
    policy = AddressPolicy.from_cidrs(["10.0.0.0/8"])
    assert policy.check_host("10.1.2.3") == ipaddress.ip_address("10.1.2.3")
    with pytest.raises(AddressRefused, match="ssrf_allow_cidrs"):
        policy.check_host("192.168.0.1")
    with pytest.raises(AddressRefused):
        policy.check_host("127.0.0.1")  # loopback is its own switch


def test_allowlist_applies_to_ipv4_embedded_in_ipv6() -> None:
    # ::ffff:10.1.2.3 reaches 10.1.2.3, but the IPv6 form itself (::ffff:0:0/96)
    # is outside every IPv4 allowlist entry, so it stays refused.
    policy = AddressPolicy.from_cidrs(["10.0.0.0/8"])
    with pytest.raises(AddressRefused):
        policy.check_host("[::ffff:10.1.2.3]")


def test_from_cidrs_accepts_host_bits_and_keeps_loopback_flag() -> None:
    policy = AddressPolicy.from_cidrs(["10.1.2.3/8", "fd12::1/64"], allow_loopback=True)
    assert policy.allow_loopback is True
    assert policy.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd12::/64"),
    )
    assert policy.check_host("[fd12::5]") == ipaddress.ip_address("fd12::5")
    assert policy.check_host("[::1]") == ipaddress.ip_address("::1")


def test_metadata_refused_even_when_allowlisted() -> None:
    policy = AddressPolicy.from_cidrs(["100.64.0.0/10"])
    assert policy.check_host("100.64.0.1") == ipaddress.ip_address("100.64.0.1")
    with pytest.raises(AddressRefused, match="metadata"):
        policy.check_host("100.100.100.200")
    with pytest.raises(AddressRefused):
        policy.check_host("[::ffff:100.100.100.200]")


def test_oracle_metadata_refused_even_when_allowlisted() -> None:
    policy = AddressPolicy.from_cidrs(["192.0.0.0/24"])
    assert policy.check_host("192.0.0.1") is not None
    with pytest.raises(AddressRefused, match="metadata"):
        policy.check_host("192.0.0.192")


def test_link_local_cannot_be_allowlisted_in_the_policy_either() -> None:
    policy = AddressPolicy.from_cidrs(["169.254.0.0/16", "fe80::/10"])
    with pytest.raises(AddressRefused, match="link-local"):
        policy.check_host("169.254.1.1")
    with pytest.raises(AddressRefused, match="link-local"):
        policy.check_host("[fe80::1]")


# --- settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cidrs",
    [["169.254.0.0/16"], ["0.0.0.0/0"], ["::/0"], ["fe80::/16"], ["10.0.0.0/8", "::/0"]],
)
def test_settings_refuse_link_local_or_everything(cidrs: list[str]) -> None:
    with pytest.raises(ValidationError):
        Settings(dev=True, ssrf_allow_cidrs=cidrs)


def test_settings_accept_a_private_range() -> None:
    settings = Settings(dev=True, ssrf_allow_cidrs=["10.0.0.0/8"])
    assert settings.ssrf_allow_cidrs == ["10.0.0.0/8"]
