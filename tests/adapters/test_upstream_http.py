"""The A2A upstream pool (`adapters.http.UpstreamHTTP`): the SSRF policy holds for
the host aiohttp actually connects to, whatever spelling the URL uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from adapters.http import UpstreamHTTP, UpstreamRefused
from registry.ssrf import AddressPolicy
from tests.support.servers import ServerThread


def _answer(_url: str) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"internal"})

    return app


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamHTTP]:
    http = UpstreamHTTP(
        AddressPolicy(allow_loopback=False),
        connect_timeout_seconds=2,
        idle_timeout_seconds=2,
        max_response_bytes=1024,
        max_stream_bytes=1024,
    )
    yield http
    await http.aclose()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "①②⑦.0.0.1",  # enclosed digits: yarl folds them to ASCII
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # fullwidth digits
        "127。0。0。1",  # ideographic full stops
        "[::ffff:127.0.0.1]",
        "localhost",  # a name: the resolver's check
    ],
)
async def test_every_spelling_of_a_forbidden_host_is_refused(pool: UpstreamHTTP, host: str) -> None:
    with ServerThread(_answer) as server:
        url = f"http://{host}:{server.port}/"
        with pytest.raises((UpstreamRefused, OSError)) as raised:
            await pool.post(url, b"{}", {}, timeout_seconds=3)
        refusal = str(raised.value) + str(raised.value.__cause__)
        assert "not allowed" in refusal or "loopback" in refusal
        # httpx refuses some spellings itself (IDNA), the pool the rest.
        with pytest.raises((httpx.TransportError, httpx.InvalidURL)):
            await pool.httpx.post(url, content=b"{}")


@pytest.mark.parametrize(
    "url",
    [
        "http://⑯⑨。②⑤④。⑯⑨。②⑤④/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://user:pw@example.com/",
        "ftp://example.com/",
    ],
)
def test_metadata_credentials_and_other_schemes_are_refused_before_connecting(
    pool: UpstreamHTTP, url: str
) -> None:
    with pytest.raises(UpstreamRefused):
        pool.check_url(url)


def _sets_a_cookie(_url: str) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        sent = dict(scope["headers"]).get(b"cookie", b"")
        start = [(b"set-cookie", b"session=one-users; Path=/")]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        await send({"type": "http.response.body", "body": sent})

    return app


async def test_the_sdk_client_keeps_no_cookie_between_calls() -> None:
    # One upstream's cookie, set on one user's call, must not ride on the next.
    http = UpstreamHTTP(
        AddressPolicy(allow_loopback=True),
        connect_timeout_seconds=2,
        idle_timeout_seconds=2,
        max_response_bytes=1024,
        max_stream_bytes=1024,
    )
    try:
        with ServerThread(_sets_a_cookie) as server:
            await http.httpx.get(server.url + "/")
            assert (await http.httpx.get(server.url + "/")).content == b""
            assert not http.httpx.cookies
    finally:
        await http.aclose()
