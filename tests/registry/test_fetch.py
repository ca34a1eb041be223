"""`registry.fetch.SafeFetcher` against a real HTTP server on 127.0.0.1.

The server is Starlette under uvicorn in a background thread. Every fetch goes
through real DNS resolution (for names), the SSRF policy, a pinned connect and
real HTTP; only the few tests that need a DNS answer we cannot get from the
system replace the module's resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

import registry.fetch as fetch_module
from registry.fetch import (
    FetchedDocument,
    FetchError,
    FetchFailed,
    FetchLimits,
    FetchRefused,
    SafeFetcher,
)
from registry.ssrf import AddressPolicy, IPAddress
from registry.tls import client_tls
from tests.support.servers import ServerThread

# A deadline no test but the deadline's own meets on a loaded machine (a redirect
# loop is four requests); those two use DEADLINE_LIMITS.
LIMITS = FetchLimits(timeout_seconds=30, max_bytes=1024, max_redirects=3)
DEADLINE_LIMITS = FetchLimits(timeout_seconds=1, max_bytes=1024, max_redirects=3)
CARD = {"name": "Echo agent", "version": "1.0.0", "skills": [{"id": "echo"}]}
BIG = b"x" * 4096  # four times LIMITS.max_bytes
SLOW_SECONDS = 3.0  # well past DEADLINE_LIMITS.timeout_seconds


# --- the server -------------------------------------------------------------------


async def card(request: Request) -> Response:
    return JSONResponse(CARD)


async def big(request: Request) -> Response:
    return Response(BIG, media_type="application/json")


async def big_streamed(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(BIG), 256):
            yield BIG[start : start + 256]

    return StreamingResponse(chunks(), media_type="application/json")


# Set once the slow server has answered (its handler was not abandoned).
SLOW_ANSWERED = threading.Event()


async def slow(request: Request) -> Response:
    await asyncio.sleep(SLOW_SECONDS)  # the behaviour under test: a slow server
    SLOW_ANSWERED.set()
    return JSONResponse(CARD)


async def drip(request: Request) -> Response:
    # Each chunk arrives quickly enough for a per-read timeout; the whole body does not.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            await asyncio.sleep(0.25)
            yield b" "

    return StreamingResponse(chunks(), media_type="application/json")


async def not_json(request: Request) -> Response:
    return Response(b"<html>not a card</html>", media_type="text/html")


async def gzipped(request: Request) -> Response:
    # What nginx/Cloudflare do with JSON when the client advertises gzip.
    body = json.dumps(CARD).encode()
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            gzip.compress(body),
            media_type="application/json",
            headers={"Content-Encoding": "gzip"},
        )
    return Response(body, media_type="application/json")


async def host_echo(request: Request) -> Response:
    return JSONResponse(
        {
            "host": request.headers.get("host"),
            "accept": request.headers.get("accept"),
            "server_port": request.scope["server"][1] if request.scope.get("server") else None,
        }
    )


def redirect_to(location: str, status: int = 302) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(status_code=status, headers={"Location": location})

    return endpoint


async def chain(request: Request) -> Response:
    remaining = int(request.path_params["n"])
    if remaining == 0:
        return JSONResponse(CARD)
    return RedirectResponse(f"/chain/{remaining - 1}", status_code=302)


async def no_location(request: Request) -> Response:
    return Response(status_code=302)


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/card", card),
            Route("/big", big),
            Route("/big-streamed", big_streamed),
            Route("/slow", slow),
            Route("/drip", drip),
            Route("/not-json", not_json),
            Route("/gzip", gzipped),
            Route("/host-echo", host_echo),
            Route("/redirect-ok", redirect_to("/card")),
            Route("/redirect-relative", redirect_to("card")),
            Route("/redirect-303", redirect_to("/card", 303)),
            Route("/redirect-308", redirect_to("/card", 308)),
            Route("/redirect-private", redirect_to("http://10.0.0.1/x")),
            Route("/redirect-metadata", redirect_to("http://169.254.169.254/latest/meta-data/")),
            Route("/redirect-loop", redirect_to("/redirect-loop")),
            Route("/redirect-mapped", redirect_to("http://[::ffff:169.254.169.254]/")),
            Route("/redirect-decimal", redirect_to("http://2130706433/card")),
            Route("/redirect-file", redirect_to("file:///etc/passwd")),
            Route("/redirect-malformed", redirect_to("http://a]b/")),
            Route("/redirect-no-location", no_location),
            Route("/chain/{n:int}", chain),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(lambda _url: build_app(), also_ipv6=True) as srv:
        yield srv


@pytest.fixture
def base(server: ServerThread) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    """Dev-mode policy: loopback allowed, nothing else private."""
    async with contextlib.aclosing(SafeFetcher(AddressPolicy(allow_loopback=True), LIMITS)) as f:
        yield f


@pytest.fixture
async def deadline_fetcher() -> AsyncIterator[SafeFetcher]:
    """As ``fetcher``, with a one-second deadline: for the deadline's tests."""
    async with contextlib.aclosing(
        SafeFetcher(AddressPolicy(allow_loopback=True), DEADLINE_LIMITS)
    ) as f:
        yield f


@pytest.fixture
async def strict_fetcher() -> AsyncIterator[SafeFetcher]:
    """Production default: no loopback, no allowlist."""
    async with contextlib.aclosing(SafeFetcher(AddressPolicy(), LIMITS)) as f:
        yield f


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Make every name resolve to ``answers``; returns the names that were looked up."""
    asked: list[str] = []

    async def resolve(hostname: str, port: int) -> list[IPAddress]:
        asked.append(hostname)
        return [ipaddress.ip_address(a) for a in answers]

    monkeypatch.setattr(fetch_module, "_resolve", resolve)
    return asked


# --- plain fetches ----------------------------------------------------------------


async def test_fetches_json(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/card")
    assert isinstance(document, FetchedDocument)
    assert document.status == 200
    assert document.url == f"{base}/card"
    assert document.json() == CARD


async def test_query_string_is_kept(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/card?a=1&b=two")
    assert document.url == f"{base}/card?a=1&b=two"
    assert document.json() == CARD


async def test_error_status_is_reported_not_raised(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/no-such-path")
    assert document.status == 404
    assert document.url == f"{base}/no-such-path"


async def test_fetcher_is_reusable(fetcher: SafeFetcher, base: str) -> None:
    results = await asyncio.gather(*(fetcher.get(f"{base}/card") for _ in range(5)))
    assert [r.json() for r in results] == [CARD] * 5


async def test_host_header_keeps_the_literal_host(
    fetcher: SafeFetcher, base: str, server: ServerThread
) -> None:
    document = await fetcher.get(f"{base}/host-echo")
    echoed = document.json()
    assert echoed["host"] == f"127.0.0.1:{server.port}"
    assert echoed["accept"] == "application/json"


async def test_host_header_keeps_the_name_when_connecting_to_its_address(
    fetcher: SafeFetcher, server: ServerThread
) -> None:
    document = await fetcher.get(f"http://localhost:{server.port}/host-echo")
    assert document.json()["host"] == f"localhost:{server.port}"
    assert document.url == f"http://localhost:{server.port}/host-echo"


async def test_connects_to_the_checked_address_not_a_second_lookup(
    fetcher: SafeFetcher, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name only our (fake) resolver knows: if anything re-resolved it, the
    # request could not reach the server at all.
    asked = fake_dns(monkeypatch, "127.0.0.1")
    document = await fetcher.get(f"http://agent.test:{server.port}/host-echo")
    assert document.json()["host"] == f"agent.test:{server.port}"
    assert asked == ["agent.test"]


async def test_accept_header_is_the_callers(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/host-echo", accept="application/jwk-set+json")
    assert document.json()["accept"] == "application/jwk-set+json"


async def test_compressed_json_is_readable(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/gzip")
    assert document.json() == CARD


# --- limits -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/big-streamed"])
async def test_oversized_body_is_refused(fetcher: SafeFetcher, base: str, path: str) -> None:
    with pytest.raises(FetchFailed, match="larger than 1024 bytes"):
        await fetcher.get(f"{base}{path}")


async def test_big_routes_really_differ_in_content_length(base: str) -> None:
    # Guards the test above: one variant declares its length, the other streams.
    async with httpx.AsyncClient(trust_env=False, verify=client_tls()) as client:
        declared = await client.get(f"{base}/big")
        streamed = await client.get(f"{base}/big-streamed")
    assert declared.headers["content-length"] == str(len(BIG))
    assert "content-length" not in streamed.headers
    assert streamed.headers.get("transfer-encoding") == "chunked"
    assert declared.content == streamed.content == BIG


async def test_body_at_the_limit_is_fine(base: str, server: ServerThread) -> None:
    f = SafeFetcher(AddressPolicy(allow_loopback=True), FetchLimits(max_bytes=len(BIG)))
    try:
        assert (await f.get(f"{base}/big")).body == BIG
        assert (await f.get(f"{base}/big-streamed")).body == BIG
    finally:
        await f.aclose()


async def test_slow_server_times_out(deadline_fetcher: SafeFetcher, base: str) -> None:
    SLOW_ANSWERED.clear()
    with pytest.raises(FetchFailed, match="did not answer within 1s"):
        await deadline_fetcher.get(f"{base}/slow")
    assert not SLOW_ANSWERED.is_set()  # gave up before the server answered


async def test_deadline_covers_the_whole_body(deadline_fetcher: SafeFetcher, base: str) -> None:
    with pytest.raises(FetchFailed, match="within 1s"):
        await deadline_fetcher.get(f"{base}/drip")


# --- redirects --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/redirect-ok", "/redirect-relative", "/redirect-303", "/redirect-308"]
)
async def test_redirect_is_followed(fetcher: SafeFetcher, base: str, path: str) -> None:
    document = await fetcher.get(f"{base}{path}")
    assert document.status == 200
    assert document.url == f"{base}/card"
    assert document.json() == CARD


async def test_up_to_max_redirects_are_followed(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/chain/3")
    assert document.url == f"{base}/chain/0"
    assert document.json() == CARD


async def test_one_redirect_too_many_fails(fetcher: SafeFetcher, base: str) -> None:
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        await fetcher.get(f"{base}/chain/4")


async def test_redirect_loop_fails(fetcher: SafeFetcher, base: str) -> None:
    with pytest.raises(FetchFailed, match="redirects"):
        await fetcher.get(f"{base}/redirect-loop")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect-private", "10.0.0.1 is a private address"),
        ("/redirect-metadata", "169.254.169.254 is a cloud metadata address"),
        ("/redirect-mapped", "::ffff:"),
        ("/redirect-decimal", "non-canonical"),
        ("/redirect-file", "only http and https"),
    ],
)
async def test_redirect_to_forbidden_target_is_refused(
    fetcher: SafeFetcher, base: str, path: str, reason: str
) -> None:
    with pytest.raises(FetchRefused, match=re.escape(reason)):
        await fetcher.get(f"{base}{path}")


async def test_redirect_without_location_fails(fetcher: SafeFetcher, base: str) -> None:
    with pytest.raises(FetchFailed, match="without a Location"):
        await fetcher.get(f"{base}/redirect-no-location")


async def test_malformed_redirect_is_a_fetch_error(fetcher: SafeFetcher, base: str) -> None:
    with pytest.raises(FetchError):
        await fetcher.get(f"{base}/redirect-malformed")


async def test_https_never_downgrades_to_http(
    fetcher: SafeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No TLS server here: stand in for the first hop and record what gets contacted.
    contacted: list[str] = []

    async def get_once(url: str, accept: str) -> tuple[int, httpx.Headers, bytes]:
        contacted.append(url)
        return 302, httpx.Headers({"location": "http://agent.example/card"}), b""

    monkeypatch.setattr(fetcher, "_get_once", get_once)
    with pytest.raises(FetchRefused, match=re.escape("from https to http://agent.example/card")):
        await fetcher.get("https://agent.example/card")
    assert contacted == ["https://agent.example/card"]


# --- the policy applies to what DNS says, too -------------------------------------


async def test_default_policy_refuses_loopback_literal(
    strict_fetcher: SafeFetcher, base: str
) -> None:
    with pytest.raises(FetchRefused, match="loopback"):
        await strict_fetcher.get(f"{base}/card")


async def test_default_policy_refuses_a_name_resolving_to_loopback(
    strict_fetcher: SafeFetcher, server: ServerThread
) -> None:
    with pytest.raises(FetchRefused, match="loopback"):
        await strict_fetcher.get(f"http://localhost:{server.port}/card")


async def test_fullwidth_digits_resolve_to_a_checked_address(
    strict_fetcher: SafeFetcher, server: ServerThread
) -> None:
    # Not a numeric spelling to the regex (ASCII digits only), but the resolver's
    # IDNA step turns it into 127.0.0.1, and that answer is what gets checked.
    with pytest.raises(FetchRefused, match="loopback"):
        await strict_fetcher.get(
            f"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{server.port}/card"
        )


async def test_every_dns_answer_is_checked(
    strict_fetcher: SafeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, "8.8.8.8", "10.0.0.1")
    with pytest.raises(FetchRefused, match=re.escape("10.0.0.1")):
        await strict_fetcher.get("http://mixed.example/card")


async def test_metadata_answer_refused_even_in_dev(
    fetcher: SafeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, "169.254.169.254")
    with pytest.raises(FetchRefused, match="metadata"):
        await fetcher.get("http://metadata.example/latest/meta-data/")


async def test_resolve_pins_the_checked_address(
    fetcher: SafeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, "127.0.0.1")
    target = await fetcher.resolve("https://agent.example:8443/a/b?c=d#frag")
    assert target.pinned_url == "https://127.0.0.1:8443/a/b?c=d"
    assert target.host_header == "agent.example:8443"
    assert target.hostname == "agent.example"
    ipv6 = await fetcher.resolve("http://[::1]/")
    assert ipv6.pinned_url == "http://[::1]:80/"
    assert ipv6.host_header == "[::1]"


# --- URLs refused before any connection ------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://x", "gopher://x", "javascript:alert(1)", "//x/card", "x"]
)
async def test_only_http_and_https(fetcher: SafeFetcher, url: str) -> None:
    with pytest.raises(FetchRefused, match="only http and https"):
        await fetcher.get(url)


@pytest.mark.parametrize("userinfo", ["user:pass@", "user@", ":pass@"])
async def test_credentials_in_url_are_refused(
    fetcher: SafeFetcher, server: ServerThread, userinfo: str
) -> None:
    with pytest.raises(FetchRefused, match="credentials"):
        await fetcher.get(f"http://{userinfo}127.0.0.1:{server.port}/card")


@pytest.mark.parametrize("port", ["99999", "-1", "abc", "65536"])
async def test_invalid_port_is_refused(fetcher: SafeFetcher, port: str) -> None:
    with pytest.raises(FetchRefused, match="invalid port"):
        await fetcher.get(f"http://127.0.0.1:{port}/card")


async def test_port_zero_is_refused(fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchRefused):
        await fetcher.get("http://127.0.0.1:0/card")


async def test_url_without_host_is_refused(fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchRefused, match="no host"):
        await fetcher.get("http:///card")


@pytest.mark.parametrize(
    "url", ["http://[::1/card", "http://[127.0.0.1]/card", "http://127.0.0.1:1/a\x00b"]
)
async def test_malformed_url_is_refused(fetcher: SafeFetcher, url: str) -> None:
    with pytest.raises(FetchRefused):
        await fetcher.get(url)


async def test_internationalised_hostname(
    fetcher: SafeFetcher, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, "127.0.0.1")
    try:
        document = await fetcher.get(f"http://bücher.example:{server.port}/host-echo")
    except FetchError:
        return  # refusing IDNs outright would also be acceptable
    assert document.json()["host"] == f"xn--bcher-kva.example:{server.port}"


# --- failures of the remote end -----------------------------------------------------


async def test_unresolvable_host_fails(fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchFailed):
        await fetcher.get("http://does-not-exist.invalid/card")


async def test_connection_refused_fails(fetcher: SafeFetcher, closed_port: int) -> None:
    with pytest.raises(FetchFailed, match="connection refused: nothing listens there"):
        await fetcher.get(f"http://127.0.0.1:{closed_port}/card")


async def test_non_json_body(fetcher: SafeFetcher, base: str) -> None:
    document = await fetcher.get(f"{base}/not-json")
    assert document.status == 200
    assert document.body == b"<html>not a card</html>"
    with pytest.raises(FetchFailed, match="did not return valid JSON"):
        document.json()


def test_invalid_utf8_is_not_json() -> None:
    document = FetchedDocument(url="http://a.example/", status=200, body=b'{"a": "\xff"}')
    with pytest.raises(FetchFailed, match="valid JSON"):
        document.json()


async def test_fetch_error_messages_do_not_leak_internals(
    fetcher: SafeFetcher, closed_port: int
) -> None:
    with pytest.raises(FetchFailed) as info:
        await fetcher.get(f"http://127.0.0.1:{closed_port}/card")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
