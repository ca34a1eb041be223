"""gRPC upstream targets under the SSRF policy (`adapters.a2a_grpc`): the
target is resolved and every address checked before a channel exists, and the
channel dials the checked address. Real resolution, no network beyond it."""

from __future__ import annotations

import ipaddress

import pytest

from adapters.a2a_grpc import GrpcTarget, checked_addresses, open_channel, parse_target
from adapters.http import UpstreamRefused
from registry.ssrf import AddressPolicy

STRICT = AddressPolicy()  # production: no loopback, no private ranges
DEV = AddressPolicy(allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("agent.example:443", GrpcTarget("agent.example", 443, None)),
        ("grpcs://agent.example:8443", GrpcTarget("agent.example", 8443, True)),
        ("grpc://10.0.0.5:50051", GrpcTarget("10.0.0.5", 50051, False)),
        ("[::1]:50051", GrpcTarget("::1", 50051, None)),
    ],
)
def test_targets_as_cards_write_them(url: str, expected: GrpcTarget) -> None:
    assert parse_target(url) == expected


@pytest.mark.parametrize(
    "url",
    ["agent.example", "https://agent.example:443", "grpc://agent.example", ":50051", "h:port"],
)
def test_a_target_that_is_not_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(UpstreamRefused):
        parse_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:50051",  # loopback, outside --dev
        "localhost:50051",  # a name that resolves to loopback
        "169.254.169.254:80",  # the cloud metadata address
        "10.0.0.5:50051",  # private, not in ssrf_allow_cidrs
        "[::ffff:127.0.0.1]:50051",  # loopback tunnelled in IPv6
        "2130706433:50051",  # a numeric spelling of 127.0.0.1
    ],
)
async def test_a_forbidden_target_gets_no_channel(url: str) -> None:
    with pytest.raises(UpstreamRefused):
        await open_channel(url, STRICT, max_bytes=1024)


async def test_an_unknown_name_is_refused_not_raised() -> None:
    with pytest.raises(UpstreamRefused):
        await checked_addresses(GrpcTarget("no-such-host.invalid", 50051, None), DEV)


async def test_a_dev_gateway_reaches_loopback_on_the_checked_address() -> None:
    found = await checked_addresses(GrpcTarget("localhost", 50051, None), DEV)
    assert found and all(address.is_loopback for address in found)
    channel = await open_channel("127.0.0.1:50051", DEV, max_bytes=1024)
    await channel.close()


async def test_an_allowed_private_range_is_reached() -> None:
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert await checked_addresses(GrpcTarget("10.1.2.3", 50051, None), policy) == [
        ipaddress.ip_address("10.1.2.3")
    ]
