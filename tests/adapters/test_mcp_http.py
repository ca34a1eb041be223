"""The MCP upstream client (httpx2 over an aiohttp pool): the SSRF policy at
connect time, the credential header, the answer cap, streaming, no redirects,
cookies or proxies, and the OAuth client-credentials token cache."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
from typing import Any

import httpx2
import pytest
from aiohttp.abc import ResolveResult

from adapters.http import SafeResolver, UpstreamRefused
from adapters.mcp_auth import ClientCredentialsToken, UpstreamAuthFailed
from adapters.mcp_http import (
    Credential,
    Refused,
    TooLarge,
    UpstreamAuth,
    call_credential,
    checked_client,
    refusal_of,
)
from registry.ssrf import AddressPolicy
from tests.support.servers import ServerThread


def _client(policy: AddressPolicy, auth: UpstreamAuth | None = None, cap: int = 1024) -> Any:
    return checked_client(
        policy,
        auth or UpstreamAuth(),
        connect_timeout_seconds=2,
        read_timeout_seconds=5,
        max_response_bytes=cap,
    )


def _echo_headers(_url: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        if query == "gzip":  # a small bomb: 1 MiB of zeros, compressed
            body = gzip.compress(b"0" * (1 << 20))
            coded = [(b"content-encoding", b"gzip")]
            await send({"type": "http.response.start", "status": 200, "headers": coded})
            await send({"type": "http.response.body", "body": body})
            return
        size = int(query or 0)
        body = json.dumps(headers).encode() if not size else b"x" * size
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
def echo() -> Any:
    with ServerThread(_echo_headers) as server:
        yield server


async def test_a_forbidden_address_is_refused_at_connect_time(echo: ServerThread) -> None:
    # "localhost" is a name: only the connect-time check can see it is loopback.
    port = echo.port
    async with _client(AddressPolicy(allow_loopback=False)) as client:
        for url in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/"):
            with pytest.raises(httpx2.ConnectError, match="refused by the SSRF policy"):
                await client.get(url)
        with pytest.raises(httpx2.ConnectError, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data/")
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        assert (await client.get(f"http://localhost:{port}/")).status_code == 200


async def test_the_resolver_checks_every_resolved_address() -> None:
    resolver = SafeResolver(AddressPolicy(allow_loopback=False))
    try:
        with pytest.raises(UpstreamRefused, match="loopback"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


def _answers(*hosts: str, port: int) -> list[ResolveResult]:
    return [
        ResolveResult(hostname="", host=h, port=port, family=0, proto=0, flags=0) for h in hosts
    ]


class _FakeDNS:
    """Stands in for the system resolver under `SafeResolver`: ``answers`` in turn."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        self.asked.append(host)
        return _answers(*self.answers.pop(0), port=port)

    async def close(self) -> None:
        pass


async def test_one_forbidden_address_among_the_answers_refuses_the_name(
    echo: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = _FakeDNS(["8.8.8.8", "10.0.0.7"])
    monkeypatch.setattr("aiohttp.ThreadedResolver", lambda: dns)
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        with pytest.raises(httpx2.ConnectError, match=r"refused by the SSRF policy.*10\.0\.0\.7"):
            await client.get(f"http://upstream.example:{echo.port}/")
    assert dns.asked == ["upstream.example"]


async def test_the_connection_goes_to_the_checked_address(
    echo: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebinding DNS server answers a harmless address first, loopback next.
    # The name resolves nowhere else: that the call reaches the test server
    # shows aiohttp connected to the address the resolver checked, and asked
    # nobody again.
    dns = _FakeDNS(["127.0.0.1"], ["169.254.169.254"])
    monkeypatch.setattr("aiohttp.ThreadedResolver", lambda: dns)
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        answer = await client.get(f"http://rebind.example:{echo.port}/")
        assert answer.status_code == 200 and answer.json()["host"] == f"rebind.example:{echo.port}"
        assert (await client.get(f"http://rebind.example:{echo.port}/")).status_code == 200
    assert dns.asked == ["rebind.example"]  # the checked answer was reused, not re-asked


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "①②⑦.0.0.1",  # enclosed digits
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # fullwidth digits
        "127。0。0。1",  # ideographic full stops
        "[::ffff:127.0.0.1]",
        "⑯⑨。②⑤④。⑯⑨。②⑤④",  # the metadata address
        "2130706433",  # 127.0.0.1 as one number
    ],
)
async def test_every_spelling_of_a_forbidden_host_is_refused(echo: ServerThread, host: str) -> None:
    async with _client(AddressPolicy(allow_loopback=False)) as client:
        # httpx2 refuses some spellings itself (IDNA), the transport the rest.
        with pytest.raises((httpx2.ConnectError, httpx2.InvalidURL)):
            await client.get(f"http://{host}:{echo.port}/")


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@127.0.0.1/"])
async def test_other_schemes_and_credentials_in_urls_are_refused(url: str) -> None:
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        with pytest.raises((httpx2.UnsupportedProtocol, httpx2.ConnectError)):
            await client.get(url)


async def test_one_credential_header_and_never_anothers(echo: ServerThread) -> None:
    auth = UpstreamAuth()
    auth.default = Credential("X-Api-Key", "default-key")
    async with _client(AddressPolicy(allow_loopback=True), auth) as client:
        seen = (await client.get(echo.url, headers={"Authorization": "Bearer caller"})).json()
        assert seen.get("x-api-key") == "default-key" and "authorization" not in seen
        with call_credential(Credential("Authorization", "Bearer minted")):
            seen = (await client.get(echo.url)).json()
        assert seen["authorization"] == "Bearer minted" and "x-api-key" not in seen
        assert "Bearer minted" not in repr(Credential("Authorization", "Bearer minted"))


async def test_an_oversized_answer_is_cut_off(echo: ServerThread) -> None:
    async with _client(AddressPolicy(allow_loopback=True), cap=1000) as client:
        assert len((await client.get(echo.url + "?999")).content) == 999
        with pytest.raises(TooLarge):
            await client.get(echo.url + "?5000")


def _token_server(answers: list[tuple[int, dict[str, Any]]], seen: list[dict[str, str]]) -> Any:
    def build(_url: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            message = await receive()
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            seen.append(
                {
                    "authorization": headers.get("authorization", ""),
                    "body": message["body"].decode(),
                }
            )
            status, body = answers.pop(0)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})

        return app

    return build


async def test_a_compressed_answer_is_refused_before_it_expands(echo: ServerThread) -> None:
    # Asked for identity; 1 MiB of gzip-ed zeros is ~1 KB on the wire, under
    # the cap, and would be 1 MiB in memory once decoded.
    async with _client(AddressPolicy(allow_loopback=True), cap=64 * 1024) as client:
        with pytest.raises(TooLarge, match="gzip-coded"):
            await client.get(echo.url + "/?gzip")


async def test_client_credentials_are_fetched_once_and_cached() -> None:
    seen: list[dict[str, str]] = []
    answers = [(200, {"access_token": "t1", "token_type": "Bearer", "expires_in": 3600})]
    with ServerThread(_token_server(answers, seen)) as server:
        async with _client(AddressPolicy(allow_loopback=True)) as http:
            tokens = ClientCredentialsToken(
                http, token_url=server.url, client_id="id:x", client_secret="s&y", scope="a b"
            )
            first = await tokens.credential()
            second = await tokens.credential()
    assert first == second == Credential("Authorization", "Bearer t1")
    assert len(seen) == 1
    basic = base64.b64decode(seen[0]["authorization"].removeprefix("Basic ")).decode()
    assert basic == "id%3Ax:s%26y"  # RFC 6749 §2.3.1: form-urlencoded first
    assert "grant_type=client_credentials" in seen[0]["body"] and "scope=a+b" in seen[0]["body"]


@pytest.mark.parametrize(
    "answer",
    [
        (401, {"error": "invalid_client"}),
        (200, {"token_type": "Bearer"}),
        (200, {"access_token": "t", "token_type": "mac"}),
        (200, {"access_token": "bad\ntoken", "token_type": "Bearer"}),
    ],
)
async def test_a_bad_token_answer_is_a_clear_error(answer: tuple[int, dict[str, Any]]) -> None:
    with ServerThread(_token_server([answer], [])) as server:
        async with _client(AddressPolicy(allow_loopback=True)) as http:
            tokens = ClientCredentialsToken(
                http, token_url=server.url, client_id="id", client_secret="s"
            )
            with pytest.raises(UpstreamAuthFailed, match="token endpoint"):
                await tokens.credential()


def _behaviours(released: threading.Event) -> Any:
    def build(_url: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            path = scope["path"]
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            if path == "/redirect":
                start = [(b"location", b"/elsewhere")]
                await send({"type": "http.response.start", "status": 307, "headers": start})
                await send({"type": "http.response.body", "body": b""})
            elif path == "/cookie":
                start = [(b"set-cookie", b"session=one-users; Path=/")]
                await send({"type": "http.response.start", "status": 200, "headers": start})
                await send({"type": "http.response.body", "body": b"{}"})
            elif path == "/stream":
                start = [(b"content-type", b"text/event-stream")]
                await send({"type": "http.response.start", "status": 200, "headers": start})
                first = b"event: message\ndata: " + b"x" * 2000 + b"\n\n"
                await send({"type": "http.response.body", "body": first, "more_body": True})
                await asyncio.to_thread(released.wait, 10)  # the rest once the first was read
                await send({"type": "http.response.body", "body": b"event: message\ndata: end\n\n"})
            elif path == "/declared":
                start = [(b"content-length", b"5000")]
                await send({"type": "http.response.start", "status": 200, "headers": start})
                await send({"type": "http.response.body", "body": b"x" * 5000})
            elif path == "/silent":
                while (await receive())["type"] != "http.disconnect":
                    pass  # silent until the caller gives up
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            else:
                body = json.dumps({"headers": headers, "path": path}).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})

        return app

    return build


@pytest.fixture
def released() -> threading.Event:
    return threading.Event()


@pytest.fixture
def behaviours(released: threading.Event) -> Any:
    with ServerThread(_behaviours(released)) as server:
        yield server
    released.set()


async def test_redirects_are_handed_back_not_followed(behaviours: ServerThread) -> None:
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        answer = await client.get(behaviours.url + "/redirect")
        assert answer.status_code == 307 and answer.headers["location"] == "/elsewhere"


async def test_no_cookie_is_kept_between_calls(behaviours: ServerThread) -> None:
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        await client.get(behaviours.url + "/cookie")
        seen = (await client.get(behaviours.url + "/")).json()["headers"]
        assert "cookie" not in seen


async def test_no_proxy_is_taken_from_the_environment(
    behaviours: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9/")  # nothing listens on port 9
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        assert (await client.get(behaviours.url + "/")).json()["path"] == "/"


async def test_an_event_stream_is_streamed_and_not_held_to_the_answer_cap(
    behaviours: ServerThread, released: threading.Event
) -> None:
    # The first event (2 KB, over the 1 KB answer cap) arrives while the server
    # still holds the rest back: nothing waited for the end of the body.
    async with (
        _client(AddressPolicy(allow_loopback=True), cap=1024) as client,
        client.stream("GET", behaviours.url + "/stream") as answer,
    ):
        chunks = answer.aiter_bytes()
        first = await anext(chunks)
        while b"\n\n" not in first:
            first += await anext(chunks)
        assert first.startswith(b"event: message")
        released.set()
        rest = b"".join([chunk async for chunk in chunks])
        assert rest.endswith(b"data: end\n\n")


async def test_a_declared_oversized_answer_is_refused_before_reading(
    behaviours: ServerThread,
) -> None:
    async with _client(AddressPolicy(allow_loopback=True), cap=1000) as client:
        with pytest.raises(TooLarge, match="exceeds 1000 bytes"):
            await client.get(behaviours.url + "/declared")


async def test_transport_failures_are_httpx2_errors(behaviours: ServerThread) -> None:
    # The SDK and the token client catch httpx2's errors, whatever is underneath.
    async with _client(AddressPolicy(allow_loopback=True)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(behaviours.url + "/silent", timeout=httpx2.Timeout(5, read=0.2))
        with pytest.raises(httpx2.ConnectError):
            await client.get("http://127.0.0.1:9/")  # nothing listens


@pytest.mark.parametrize(
    ("status", "challenge", "refused"),
    [
        (401, None, Refused(401)),
        (401, 'Bearer error="invalid_token"', Refused(401)),
        (
            403,
            'Bearer error="insufficient_scope", scope="notes:read notes:write"',
            Refused(403, "notes:read notes:write"),
        ),
        (403, 'Bearer error="insufficient_scope"', Refused(403, None)),
        (403, None, None),  # a 403 of another kind: not about the credential's scope
        (403, 'Bearer error="invalid_request"', None),
        (500, 'Bearer error="insufficient_scope"', None),
        (200, None, None),
    ],
)
def test_what_an_answer_says_of_the_credential(
    status: int, challenge: str | None, refused: Refused | None
) -> None:
    assert refusal_of(status, challenge) == refused
