"""The MCP upstream client: the SSRF policy at connect time, the credential
header, the answer cap, and the OAuth client-credentials token cache."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import httpx2
import pytest

from adapters.mcp_auth import ClientCredentialsToken, UpstreamAuthFailed
from adapters.mcp_http import (
    CheckedBackend,
    Credential,
    TooLarge,
    UpstreamAuth,
    call_credential,
    checked_client,
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


async def test_the_backend_checks_every_resolved_address() -> None:
    backend = CheckedBackend(AddressPolicy(allow_loopback=False))
    with pytest.raises(Exception, match="loopback"):
        await backend.checked_addresses("localhost", 80)


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
