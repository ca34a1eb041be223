"""RemoteJwks against a real HTTP server on 127.0.0.1.

The server is a few lines of asyncio answering HTTP/1.1 with whatever status and
body the test sets, and counting requests. RemoteJwks's clock is a fake the
test advances, so refetch rate limiting is checked without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from policies.jwks import RemoteJwks
from policies.keys import SigningKey
from policies.tokens import TokenInvalid, TokenVerifier, TrustedIssuer, mint_access_token
from registry.tls import client_tls

MIN_REFETCH = 30.0
CACHE = 600.0


class JwksServer:
    """Answers every request with ``status`` and ``body``; counts requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b'{"keys": []}'
        self.requests = 0
        self.paths: list[str] = []
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def serve(self, *keys: dict[str, Any]) -> None:
        self.status = 200
        self.body = json.dumps({"keys": list(keys)}).encode()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/.well-known/jwks.json"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            self.paths.append(request.split(b" ")[1].decode())
            if self.delay:
                await asyncio.sleep(self.delay)
            head = (
                f"HTTP/1.1 {self.status} X\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + self.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up (e.g. it stopped reading an oversized body)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    srv = JwksServer()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, verify=client_tls()) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks(server: JwksServer, client: httpx.AsyncClient, clock: FakeClock) -> RemoteJwks:
    return RemoteJwks(
        server.url, client, cache_seconds=CACHE, min_refetch_seconds=MIN_REFETCH, clock=clock
    )


@pytest.fixture(scope="module")
def key_a() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def key_b() -> SigningKey:
    return SigningKey.generate()


# --------------------------------------------------------------------------- lookups


async def test_known_kid_is_found(jwks: RemoteJwks, server: JwksServer, key_a: SigningKey) -> None:
    server.serve(key_a.public_jwk)

    found = await jwks.get(key_a.kid)

    assert found == key_a.public_jwk
    assert server.requests == 1
    assert server.paths == ["/.well-known/jwks.json"]
    assert jwks.fetch_count == 1


async def test_known_kid_is_served_from_cache(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    for _ in range(5):
        clock.now += 60
        assert await jwks.get(key_a.kid) == key_a.public_jwk

    assert server.requests == 1


async def test_cache_expiry_refetches_and_sees_rotation(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey, key_b: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    assert await jwks.get(key_a.kid) is not None

    server.serve(key_b.public_jwk)  # the issuer rotated and retired key_a
    clock.now += CACHE + 1

    assert await jwks.get(key_a.kid) is None
    assert await jwks.get(key_b.kid) == key_b.public_jwk
    assert server.requests == 2


# --------------------------------------------------------------------------- unknown kid


async def test_unknown_kid_refetches_at_most_once_per_interval(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)
    clock.now += MIN_REFETCH  # the first unknown kid may refetch

    for i in range(20):
        assert await jwks.get(f"garbage-{i}") is None
        clock.now += 1  # still inside the interval after that one refetch

    assert server.requests == 2


async def test_unknown_kid_within_interval_of_first_fetch_does_not_refetch(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    clock.now += MIN_REFETCH - 1
    assert await jwks.get("unknown") is None
    assert server.requests == 1


async def test_unknown_kid_after_interval_refetches_and_finds_new_key(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey, key_b: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)
    server.serve(key_a.public_jwk, key_b.public_jwk)

    clock.now += 1
    assert await jwks.get(key_b.kid) is None  # too soon: the new key is not seen yet
    assert server.requests == 1

    clock.now += MIN_REFETCH
    assert await jwks.get(key_b.kid) == key_b.public_jwk
    assert server.requests == 2
    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert server.requests == 2


async def test_concurrent_misses_share_one_fetch(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    server.delay = 0.05  # keep the first request in flight while the others arrive

    first = await asyncio.gather(*(jwks.get(key_a.kid) for _ in range(10)))
    assert first == [key_a.public_jwk] * 10
    assert server.requests == 1

    clock.now += MIN_REFETCH + 1
    misses = await asyncio.gather(*(jwks.get(f"unknown-{i}") for i in range(10)))
    assert misses == [None] * 10
    assert server.requests == 2


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("status", [500, 503, 404, 302])
async def test_server_error_keeps_previous_keys(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey, status: int
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    server.status = status
    server.body = b'{"keys": []}'
    clock.now += CACHE + 1  # force a refresh of the whole set

    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert server.requests == 2
    assert jwks.fetch_count == 2


async def test_failed_first_fetch_is_rate_limited_too(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.status = 500
    assert await jwks.get(key_a.kid) is None
    assert await jwks.get(key_a.kid) is None
    assert server.requests == 1

    server.serve(key_a.public_jwk)
    clock.now += MIN_REFETCH
    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert server.requests == 2


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"keys": {}}', id="keys-object"),
        pytest.param(b'{"nokeys": []}', id="no-keys"),
    ],
)
async def test_malformed_document_keeps_previous_keys(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey, body: bytes
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    server.body = body
    clock.now += CACHE + 1

    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert server.requests == 2


def oversized_jwks(*keys: dict[str, Any]) -> bytes:
    body = json.dumps({"keys": list(keys), "padding": "x" * (256 * 1024)}).encode()
    assert len(body) > 256 * 1024
    return body


async def test_oversized_jwks_is_rejected(
    jwks: RemoteJwks, server: JwksServer, key_a: SigningKey
) -> None:
    server.body = oversized_jwks(key_a.public_jwk)

    assert await jwks.get(key_a.kid) is None
    assert server.requests == 1


async def test_oversized_jwks_keeps_previous_keys(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey, key_b: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    server.body = oversized_jwks(key_b.public_jwk)
    clock.now += CACHE + 1

    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert await jwks.get(key_b.kid) is None
    assert server.requests == 2


async def test_jwks_just_under_the_limit_is_accepted(
    jwks: RemoteJwks, server: JwksServer, key_a: SigningKey
) -> None:
    """Control for the size limit: a large but acceptable document still loads."""
    server.serve(key_a.public_jwk)
    document = json.loads(server.body)
    document["padding"] = ""
    document["padding"] = "x" * (256 * 1024 - len(json.dumps(document).encode()))
    server.body = json.dumps(document).encode()
    assert len(server.body) == 256 * 1024

    assert await jwks.get(key_a.kid) == key_a.public_jwk


async def test_deeply_nested_jwks_keeps_previous_keys(
    jwks: RemoteJwks, server: JwksServer, clock: FakeClock, key_a: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    await jwks.get(key_a.kid)

    server.body = b"[" * 100_000
    clock.now += CACHE + 1

    assert await jwks.get(key_a.kid) == key_a.public_jwk


# --------------------------------------------------------------------------- key filtering


async def test_keys_for_encryption_are_ignored(
    jwks: RemoteJwks, server: JwksServer, key_a: SigningKey, key_b: SigningKey
) -> None:
    no_use = {k: v for k, v in key_b.public_jwk.items() if k != "use"}
    server.serve(
        {**key_a.public_jwk, "kid": "enc-key", "use": "enc"},
        {**key_a.public_jwk, "kid": "SIG-key", "use": "SIG"},
        no_use,
    )

    assert await jwks.get("enc-key") is None
    assert await jwks.get("SIG-key") is None
    assert await jwks.get(key_b.kid) == no_use  # no "use" means it may sign
    assert server.requests == 1


async def test_entries_without_string_kid_are_ignored(
    jwks: RemoteJwks, server: JwksServer, key_a: SigningKey
) -> None:
    no_kid = {k: v for k, v in key_a.public_jwk.items() if k != "kid"}
    server.serve(no_kid, {**key_a.public_jwk, "kid": 5}, "junk", key_a.public_jwk)  # type: ignore[arg-type]

    assert await jwks.get(key_a.kid) == key_a.public_jwk
    assert await jwks.get("5") is None


# --------------------------------------------------------------------------- end to end


async def test_token_verifies_against_remote_jwks(
    jwks: RemoteJwks, server: JwksServer, key_a: SigningKey, key_b: SigningKey
) -> None:
    server.serve(key_a.public_jwk)
    issuer = "https://idp.example"
    verifier = TokenVerifier([TrustedIssuer(issuer=issuer, keys=jwks, audience="gw")])
    claims: dict[str, Any] = {
        "issuer": issuer,
        "subject": "bob",
        "audience": "gw",
        "scopes": ["agents:read"],
        "ttl_seconds": 60,
        "client_id": "c",
    }

    principal = await verifier.verify(mint_access_token(key_a, **claims))
    assert principal.subject == "bob"

    with pytest.raises(TokenInvalid, match="unknown"):
        await verifier.verify(mint_access_token(key_b, **claims))
    assert server.requests == 1  # the unknown kid was rate limited, not refetched
