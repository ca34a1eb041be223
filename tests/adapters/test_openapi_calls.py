"""One REST call of a federated OpenAPI tool (`adapters.openapi`,
`adapters.openapi_http`): the request built from the arguments, the answer
as a tool result, and the call's credential -- a service one, or a user's own
(``user_oauth``), whose refusal is the federation's to tell the user.

The API is an httpx2 `MockTransport` (this unit's one piece is the mapping);
the e2e test (`tests/e2e/test_mcp_openapi.py`) runs the same against a live
FastAPI app through the gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from adapters.errors import UpstreamError, UpstreamServerError, UpstreamTimeout, UpstreamUnavailable
from adapters.mcp_http import Credential, UpstreamAuth, refusals_noted
from adapters.openapi import OpenApiUpstream
from adapters.openapi_http import BadArguments, request_of
from registry.openapi_tools import tools_of
from tests.support.rest_api import Seen, rest_api

BINDING = {
    "method": "GET",
    "path": "/items/{id}",
    "params": [
        {"name": "id", "in": "path"},
        {"name": "tags", "in": "query"},
        {"name": "flag", "in": "query"},
        {"name": "X-Req", "in": "header"},
    ],
    "body": None,
}


def test_the_request_of_a_call() -> None:
    method, url, options = request_of(
        "https://api.example/v1/",
        BINDING,
        {"id": "a b/c", "tags": ["x", "y"], "flag": True, "X-Req": "7", "unknown": 1},
    )
    assert (method, url) == ("GET", "https://api.example/v1/items/a%20b%2Fc")
    assert options == {
        "params": [("tags", "x"), ("tags", "y"), ("flag", "true")],
        "headers": {"X-Req": "7"},
    }


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({}, "missing argument 'id'"),
        ({"id": ".."}, "cannot be '..'"),
        ({"id": ""}, "cannot be ''"),
        ({"id": 1, "X-Req": "a\r\nHost: evil"}, "line break"),
    ],
)
def test_arguments_that_cannot_be_sent(arguments: dict[str, Any], why: str) -> None:
    with pytest.raises(BadArguments, match=why):
        request_of("https://api.example", BINDING, arguments)


class Api:
    """An httpx2 transport answering as ``answer`` says; what it was sent."""

    def __init__(self, answer: httpx2.Response | Exception) -> None:
        self.answer = answer
        self.sent: list[httpx2.Request] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def upstream(api: Api, *, users_own: bool = False) -> OpenApiUpstream:
    tools = tools_of(rest_api(Seen()).openapi())
    stored = {"tools": tools.tools, "bindings": tools.bindings, "title": "Stock"}
    health: list[bool] = []

    async def on_tools(_: Any) -> None:
        pass

    async def on_health(ok: bool, *_: Any) -> None:
        health.append(ok)

    def http(auth: UpstreamAuth) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(api.handle), auth=auth)

    return OpenApiUpstream(
        "stock",
        "http://api.test",
        stored,
        http,
        on_tools=on_tools,
        on_health=on_health,
        users_own=users_own,
    )


def json_answer(status: int, body: Any, content_type: str = "application/json") -> httpx2.Response:
    return httpx2.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": content_type}
    )


USER = Credential("Authorization", "Bearer alices-own-token")


async def test_the_calls_credential_goes_and_the_answer_is_structured() -> None:
    api = Api(json_answer(200, {"id": 1, "name": "bolt", "price": 0.25}))
    result = await upstream(api).call_tool("get_item", {"item_id": 1}, credential=USER)
    assert result.structured_content == {"id": 1, "name": "bolt", "price": 0.25}
    assert not result.is_error
    assert api.sent[0].headers["authorization"] == "Bearer alices-own-token"
    assert str(api.sent[0].url) == "http://api.test/items/1"


async def test_an_array_is_wrapped_and_text_is_text() -> None:
    listed = await upstream(Api(json_answer(200, [1, 2]))).call_tool("list_items", {})
    assert listed.structured_content == {"result": [1, 2]}
    plain = await upstream(Api(httpx2.Response(200, text="hello"))).call_tool("text", {})
    assert plain.structured_content is None
    assert plain.content[0].text == "hello"  # type: ignore[union-attr]
    broken = Api(
        httpx2.Response(200, content=b"{nope", headers={"content-type": "application/json"})
    )
    bad = await upstream(broken).call_tool("whoami", {})
    assert bad.is_error
    assert "invalid JSON" in bad.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [302, 400, 404, 409, 429, 500, 501])
async def test_errors_are_tool_errors_with_status_and_excerpt(status: int) -> None:
    api = Api(json_answer(status, {"detail": "x" * 1000}))
    result = await upstream(api).call_tool("whoami", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"the API answered HTTP {status} ")
    assert len(text) < 400


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_the_api_not_there_is_the_breakers(status: int) -> None:
    with pytest.raises(UpstreamServerError) as raised:
        await upstream(Api(httpx2.Response(status, text="maintenance"))).call_tool("whoami", {})
    assert raised.value.status == status
    assert "maintenance" in str(raised.value)


async def test_a_dead_api_and_a_slow_one() -> None:
    dead = Api(httpx2.ConnectError("connection refused"))
    with pytest.raises(UpstreamUnavailable, match="REST API stock is unreachable"):
        await upstream(dead).call_tool("whoami", {})
    slow = Api(httpx2.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout, match="did not answer"):
        await upstream(slow).call_tool("whoami", {}, timeout_seconds=1)


async def test_a_users_own_token_refused_is_noted_for_the_federation() -> None:
    """``user_oauth``: a 401 to the user's own token is not a tool error but
    the refusal `CallCredential.refused` turns into "connect again"."""
    api = Api(httpx2.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    with (
        refusals_noted() as refusals,
        pytest.raises(UpstreamError, match="refused your credential"),
    ):
        await upstream(api, users_own=True).call_tool("whoami", {}, credential=USER)
    assert [r.status for r in refusals] == [401]
    # A service credential's 401 is the tool's error, for the admin to see.
    service = await upstream(api).call_tool("whoami", {}, credential=USER)
    assert service.is_error
    assert "HTTP 401" in service.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["@evil.example/x", ".evil.example/x", ":8443/x"])
def test_a_stored_path_that_leaves_the_base_url_is_not_called(path: str) -> None:
    binding = {"method": "get", "path": path, "params": []}
    with pytest.raises(BadArguments, match="leaves the API's base URL"):
        request_of("https://api.example.com", binding, {})
