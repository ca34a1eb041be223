"""A REST API federated by its OpenAPI document, end to end: a real FastAPI
app serving its own ``/openapi.json`` on loopback, a real gateway on both
databases, and the `mcp` SDK's client through ``/mcp`` and a set.

What must hold: each operation is a tool with its schemas; a call reaches
the API with the service credential and no other; the policy's scopes are
enforced as for any federated tool (nothing sent when refused); 4xx and 5xx
answers are tool errors with the status and the body's start, 502-504 and a
dead API clear errors; a document that is not OpenAPI 3.x, too large, or
with a remote, dangling or cyclic `$ref` is refused with the reason and
nothing is stored -- over the API and in the CLI.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from mcp import MCPError

from gateway.cli import main
from policies.scopes import ADMIN_SCOPE
from registry.openapi_tools import MAX_DOCUMENT_BYTES
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.rest_api import Seen, rest_api
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  stock:
    require: [stock:read]
"""
SERVICE_TOKEN = "Bearer stock-service-token"


@dataclass
class Setup:
    gateway: Gateway
    api: ServerThread
    seen: Seen
    documents: dict[str, bytes]
    docs: ServerThread

    def doc_url(self, name: str) -> str:
        return f"{self.docs.url}/docs/{name}"


def documents_app(documents: dict[str, bytes]) -> FastAPI:
    """Serves whatever document a test puts in ``documents``, as JSON."""
    app = FastAPI()

    @app.get("/docs/{name}")
    async def document(name: str) -> Response:
        return Response(documents.get(name, b"{}"), media_type="application/json")

    return app


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    seen, documents = Seen(), dict[str, bytes]()
    api = ServerThread(lambda _url: rest_api(seen)).start()
    docs = ServerThread(lambda _url: documents_app(documents)).start()
    gateway = start_gateway(
        tmp_path_factory.mktemp("openapi") / "data", module_database_url, policy=POLICY
    )
    try:
        with gateway.client() as admin:
            added = admin.post(
                "/mcp-servers",
                json={
                    "name": "stock",
                    "openapi": {"url": api.url + "/openapi.json"},
                    "credential": {
                        "type": "static_header",
                        "header": "Authorization",
                        "value": SERVICE_TOKEN,
                    },
                },
            )
        assert added.status_code == 201, added.text
        yield Setup(gateway, api, seen, documents, docs)
    finally:
        stop_all(api, docs)
        gateway.server.stop()


def reader(setup: Setup) -> str:
    return setup.gateway.token("alice", "stock:read")


def listed(setup: Setup, token: str, path: str = "/mcp", mode: str = MODES[0]) -> list[types.Tool]:
    async def run() -> list[types.Tool]:
        async with mcp_client(setup.gateway.url + path, token, mode) as client:
            return list((await client.list_tools()).tools)

    return setup.gateway.server.run(run())  # type: ignore[no-any-return]


def called(
    setup: Setup, token: str, tool: str, path: str = "/mcp", mode: str = MODES[0], **arguments: Any
) -> types.CallToolResult:
    async def run() -> types.CallToolResult | MCPError:
        async with mcp_client(setup.gateway.url + path, token, mode) as client:
            await client.list_tools()  # the SDK checks structured content against it
            try:
                return await client.call_tool(tool, arguments)
            except MCPError as refused:  # raised here, not in the client's task group
                return refused

    answer = setup.gateway.server.run(run())
    if isinstance(answer, MCPError):
        raise answer
    return answer  # type: ignore[no-any-return]


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_the_api_is_registered_as_its_operations(setup: Setup) -> None:
    with setup.gateway.client() as admin:
        record = admin.get("/mcp-servers/stock").json()
    assert record["transport"] == "openapi"
    assert record["url"] == setup.api.url + "/"  # the document names no server: "/"
    assert record["credential"] == {
        "type": "static_header",
        "header": "Authorization",
        "secret_set": True,
    } | {k: None for k in record["credential"] if k not in ("type", "header", "secret_set")}
    assert record["server_info"]["name"] == "Stock API"
    names = {t["name"] for t in record["tools"]}
    # FastAPI's own id for create_item, "create_item_items_post", is a plain name.
    assert names == {
        "get_item",
        "list_items",
        "create_item_items_post",
        "whoami",
        "boom",
        "down",
        "text",
    }
    assert all(t["state"] == "approved" for t in record["tools"])


@pytest.mark.parametrize("mode", MODES)
def test_tools_list_and_call_through_mcp(setup: Setup, mode: str) -> None:
    tools = {t.name: t for t in listed(setup, reader(setup), mode=mode)}
    get_item = tools["stock__get_item"]
    assert get_item.description == "Get an item\n\nOne item of the stock, by its id."
    assert get_item.input_schema["required"] == ["item_id"]
    assert set(get_item.input_schema["properties"]) == {"item_id", "x-trace"}
    assert get_item.output_schema is not None
    assert get_item.output_schema["title"] == "Item"
    assert tools["stock__create_item_items_post"].input_schema["required"] == ["body"]

    before = len(setup.seen.requests)
    answer = called(
        setup, reader(setup), "stock__get_item", mode=mode, item_id=1, **{"x-trace": "t1"}
    )
    assert not answer.is_error, text_of(answer)
    assert answer.structured_content == {"id": 1, "name": "bolt", "price": 0.25}
    method, path, _, headers = setup.seen.requests[before]
    assert (method, path) == ("GET", "/items/1")
    assert headers["authorization"] == SERVICE_TOKEN  # the service credential, not alice's
    assert headers["x-trace"] == "t1"

    many = called(setup, reader(setup), "stock__list_items", mode=mode, limit=5)
    assert many.structured_content is not None
    assert many.structured_content["result"][0]["name"] == "bolt"
    assert setup.seen.requests[-1][2] == "limit=5"


def test_a_json_body_and_a_path_that_cannot_climb(setup: Setup) -> None:
    made = called(
        setup, reader(setup), "stock__create_item_items_post", body={"name": "nut", "price": 0.1}
    )
    assert not made.is_error, text_of(made)
    assert made.structured_content is not None
    assert made.structured_content["name"] == "nut"
    assert setup.seen.requests[-1][:2] == ("POST", "/items")
    before = len(setup.seen.requests)
    climbed = called(setup, reader(setup), "stock__get_item", item_id="..")
    assert climbed.is_error
    assert "cannot be '..'" in text_of(climbed)
    slashed = called(setup, reader(setup), "stock__get_item", item_id="../whoami")
    assert slashed.is_error  # one segment, %2F and all: FastAPI's own 422 for a non-integer
    assert [r[1] for r in setup.seen.requests[before:]] == ["/items/..%2Fwhoami"]


def test_error_answers_are_clear(setup: Setup) -> None:
    token = reader(setup)
    missing = called(setup, token, "stock__get_item", item_id=7)
    assert missing.is_error
    assert "HTTP 404" in text_of(missing)
    assert "no item 7" in text_of(missing)
    boom = called(setup, token, "stock__boom")
    assert boom.is_error
    assert "HTTP 500" in text_of(boom)
    assert "on fire" in text_of(boom)
    with pytest.raises(MCPError) as down:
        called(setup, token, "stock__down")
    assert "503" in str(down.value)
    assert "upstream maintenance" in str(down.value)
    plain = called(setup, token, "stock__text")
    assert not plain.is_error
    assert text_of(plain) == "plain words"


def test_a_user_without_the_scope_is_refused_and_nothing_sent(setup: Setup) -> None:
    bob = setup.gateway.token("bob")
    assert not [t for t in listed(setup, bob) if t.name.startswith("stock__")]
    before = len(setup.seen.requests)
    with pytest.raises(MCPError) as refused:
        called(setup, bob, "stock__get_item", item_id=1)
    assert "refused" in str(refused.value)
    assert len(setup.seen.requests) == before
    with setup.gateway.client() as admin:
        records = admin.get("/audit", params={"agent": "stock"}).json()["items"]
    outcomes = {(r["event"], r["decision"], r["outcome"]) for r in records if r["subject"] == "bob"}
    assert outcomes == {("mcp", "deny", "denied")}
    assert ("mcp", "allow", "ok") in {
        (r["event"], r["decision"], r["outcome"]) for r in records if r["subject"] == "alice"
    }


def test_search_finds_the_apis_tools(setup: Setup) -> None:
    found = called(
        setup, reader(setup), "switchboard__search_tools", query="get an item of the stock"
    )
    assert found.structured_content is not None
    names = [t["name"] for t in found.structured_content["tools"]]
    assert "stock__get_item" in names[:5]  # ranking is the search's (docs/mcp.md)
    bobs = called(setup, setup.gateway.token("bob"), "switchboard__search_tools", query="item")
    assert bobs.structured_content is not None
    assert not [t for t in bobs.structured_content["tools"] if t["name"].startswith("stock__")]


def test_a_tool_of_the_api_in_a_set(setup: Setup) -> None:
    with setup.gateway.client() as admin:
        made = admin.post(
            "/mcp-sets",
            json={
                "name": "stock-read",
                "title": "Stock, read only",
                "select": {"tools": ["stock__get_item"]},
            },
        )
    assert made.status_code == 201, made.text
    names = {t.name for t in listed(setup, reader(setup), "/mcp/stock-read")}
    assert "stock__get_item" in names
    assert "stock__boom" not in names
    answer = called(setup, reader(setup), "stock__get_item", "/mcp/stock-read", item_id=1)
    assert answer.structured_content == {"id": 1, "name": "bolt", "price": 0.25}
    before = len(setup.seen.requests)
    with pytest.raises(MCPError) as outside:
        called(setup, reader(setup), "stock__boom", "/mcp/stock-read")
    assert "stock__boom" in str(outside.value)
    assert len(setup.seen.requests) == before  # a tool outside the set is not called


def test_a_dead_api_is_a_clear_error(setup: Setup) -> None:
    seen = Seen()
    gone = ServerThread(lambda _url: rest_api(seen)).start()
    with setup.gateway.client() as admin:
        added = admin.post(
            "/mcp-servers",
            json={"name": "gone", "openapi": {"url": gone.url + "/openapi.json", "tag": "me"}},
        )
    assert added.status_code == 201, added.text
    assert [t["name"] for t in added.json()["tools"]] == ["whoami"]
    gone.stop()
    admin_token = setup.gateway.token("admin", ADMIN_SCOPE)
    with pytest.raises(MCPError) as dead:
        called(setup, admin_token, "gone__whoami")
    assert "REST API gone is unreachable" in str(dead.value)


CYCLE = {
    "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
    "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}},
}


def doc_with(schema: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9/"}],
        "paths": {
            "/x": {
                "post": {
                    "operationId": "x",
                    "requestBody": {"content": {"application/json": {"schema": schema}}},
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {"schemas": schemas or {}},
    }


BAD_DOCUMENTS = {
    "swagger": ({"swagger": "2.0", "info": {}, "paths": {}}, "not an OpenAPI 3.x document"),
    "remote": (doc_with({"$ref": "https://evil.example/s.json"}), "is not local"),
    "dangling": (doc_with({"$ref": "#/components/schemas/Nope"}), "cannot be resolved"),
    "cycle": (doc_with({"$ref": "#/components/schemas/A"}, CYCLE), "$ref cycle"),
    "array": ([1, 2], "JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_bad_documents_are_refused_and_nothing_stored(setup: Setup, case: str) -> None:
    document, reason = BAD_DOCUMENTS[case]
    setup.documents[case] = json.dumps(document).encode()
    with setup.gateway.client() as admin:
        before = admin.get("/mcp-servers").json()["items"]
        for source in ({"url": setup.doc_url(case)}, {"document": document}):
            refused = admin.post("/mcp-servers", json={"name": f"bad-{case}", "openapi": source})
            if "document" in source and not isinstance(document, dict):
                assert refused.status_code == 422  # the model's own refusal
                continue
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"].endswith("openapi-refused")
            assert reason in refused.json()["detail"]
        assert admin.get("/mcp-servers").json()["items"] == before


def test_selections_and_size_are_bounded(setup: Setup) -> None:
    doc = setup.api.url + "/openapi.json"
    huge = doc_with({"type": "object", "description": "x" * (MAX_DOCUMENT_BYTES + 1)})
    setup.documents["huge"] = json.dumps(huge).encode()
    metadata = doc_with({"type": "object"}) | {"servers": [{"url": "http://169.254.169.254/"}]}
    setup.documents["metadata"] = json.dumps(metadata).encode()
    setup.documents["deep"] = b"[" * 100_000 + b"]" * 100_000
    cases = [
        ({"url": doc, "operations": ["nope"]}, "openapi-refused", "no operation nope"),
        ({"url": doc, "tag": "nobody"}, "openapi-refused", "no operation is tagged 'nobody'"),
        ({"url": setup.doc_url("huge")}, "openapi-refused", f"larger than {MAX_DOCUMENT_BYTES}"),
        ({"url": setup.docs.url + "/nowhere"}, "openapi-refused", "answered HTTP 404"),
        ({"url": setup.doc_url("deep")}, "openapi-refused", "nests deeper than"),
        ({"url": setup.doc_url("metadata")}, "url-refused", "169.254.169.254"),
        ({"url": "http://169.254.169.254/openapi.json"}, "url-refused", "169.254.169.254"),
    ]
    with setup.gateway.client() as admin:
        before = admin.get("/mcp-servers").json()["items"]
        for source, kind, reason in cases:
            refused = admin.post("/mcp-servers", json={"name": "bounded", "openapi": source})
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"].endswith(kind), refused.json()
            assert reason in refused.json()["detail"], refused.json()
        assert admin.get("/mcp-servers").json()["items"] == before


def cli(setup: Setup, *command: str) -> str:
    out = io.StringIO()
    token = setup.gateway.token("admin", ADMIN_SCOPE)
    with contextlib.redirect_stdout(out):
        code = main([*command, "--gateway", setup.gateway.url, "--token", token])
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_the_cli_adds_an_api_from_a_file_and_says_why_not(setup: Setup, tmp_path: Path) -> None:
    document = rest_api(Seen()).openapi()
    path = tmp_path / "stock.json"
    path.write_text(json.dumps(document))
    printed = cli(
        setup,
        "mcp",
        "add",
        "stock-cli",
        setup.api.url,
        "--openapi",
        str(path),
        "--operations",
        "get_item,whoami",
    )
    assert "stock-cli" in printed
    assert "openapi" in printed
    assert "stock-cli__get_item" in printed
    assert "stock-cli__boom" not in printed
    answer = called(
        setup, setup.gateway.token("admin", ADMIN_SCOPE), "stock-cli__get_item", item_id=1
    )
    assert answer.structured_content == {"id": 1, "name": "bolt", "price": 0.25}

    bad = tmp_path / "swagger.json"
    bad.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    errors = io.StringIO()
    token = setup.gateway.token("admin", ADMIN_SCOPE)
    with contextlib.redirect_stderr(errors):
        add = ["mcp", "add", "old", setup.api.url, "--openapi", str(bad)]
        code = main([*add, "--gateway", setup.gateway.url, "--token", token])
    assert code == 2
    lines = errors.getvalue().strip().splitlines()
    assert lines == [
        "switchboard: HTTP 422: not an OpenAPI 3.x document (swagger: '2.0' (Swagger 2.0))"
    ]
