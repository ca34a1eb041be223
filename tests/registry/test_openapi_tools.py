"""An OpenAPI document's operations as tool definitions (`registry.openapi_tools`,
`registry.openapi_refs`): names, schemas, selections, and every refusal.

Two real documents are read whole: the test REST API's and the gateway's own
(`create_app(...).openapi()`, 100+ operations), neither written for this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.federation.openapi_source import base_url_of, parse_document
from gateway.settings import Settings
from registry.mcp_names import is_plain, reserved
from registry.openapi_refs import MAX_DEPTH, OpenApiRefused, inlined
from registry.openapi_tools import MAX_OPERATIONS, tool_name, tools_of
from tests.support.rest_api import Seen, rest_api


def operation(**fields: Any) -> dict[str, Any]:
    return {"responses": {"200": {"description": "ok"}}, **fields}


def document(paths: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **more}


def test_the_gateways_own_document_becomes_tools() -> None:
    own = create_app(Settings(dev=True, data_dir=Path("/nonexistent-data"))).openapi()
    tools = tools_of(own, tag="mcp")
    assert tools.tools
    assert all(is_plain(t["name"]) and reserved(t["name"]) is None for t in tools.tools)
    assert len({t["name"] for t in tools.tools}) == len(tools.tools)
    assert "$ref" not in str(tools.tools)  # every schema stands alone


def test_parameters_body_and_output() -> None:
    api = tools_of(rest_api(Seen()).openapi())
    get_item = next(t for t in api.tools if t["name"] == "get_item")
    assert get_item["annotations"]["readOnlyHint"] is True
    assert get_item["outputSchema"]["properties"]["id"] == {"type": "integer", "title": "Id"}
    assert api.bindings["list_items"]["wrap"] is True  # an array: under "result"
    made = next(t for t in api.tools if t["name"] == "create_item_items_post")
    assert made["inputSchema"]["properties"]["body"]["required"] == ["name", "price"]
    assert made["annotations"] == {
        "readOnlyHint": False,
        "idempotentHint": False,
        "destructiveHint": False,
        "openWorldHint": True,
    }


def test_operation_parameters_override_the_paths_and_owned_headers_are_dropped() -> None:
    shared = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    own = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "Authorization", "in": "header", "schema": {"type": "string"}},
        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
        {"name": "X-Req", "in": "header", "description": "a request id"},
    ]
    api = tools_of(
        document(
            {
                "/a/{id}": {
                    "parameters": shared,
                    "delete": operation(operationId="rm", parameters=own),
                }
            }
        )
    )
    schema = api.tools[0]["inputSchema"]
    assert schema["properties"] == {
        "id": {"type": "integer"},
        "X-Req": {"description": "a request id"},
    }
    assert schema["required"] == ["id"]
    assert api.bindings["rm"]["params"] == [
        {"name": "id", "in": "path"},
        {"name": "X-Req", "in": "header"},
    ]
    assert api.tools[0]["annotations"]["destructiveHint"] is True


@pytest.mark.parametrize(
    ("operation_id", "name"),
    [
        ("getItem", "getItem"),
        ("get item/by id", "get_item_by_id"),
        ("read_item_items__item_id__get", "read_item_items_item_id_get"),
        ("switchboard__search", "switchboard_search"),
        ("x" * 100, "x" * 64),
        ("///", "operation"),
    ],
)
def test_names_are_cleaned_to_the_gateways_rules(operation_id: str, name: str) -> None:
    assert tool_name(operation_id) == name
    assert is_plain(tool_name(operation_id))


def test_names_that_clean_alike_are_told_apart() -> None:
    api = tools_of(
        document(
            {"/a": {"get": operation(operationId="a b"), "post": operation(operationId="a/b")}}
        )
    )
    assert [t["name"] for t in api.tools] == ["a_b", "a_b_2"]


def test_selection_by_ids_and_tag() -> None:
    whole = rest_api(Seen()).openapi()
    assert [t["name"] for t in tools_of(whole, operations=["boom", "whoami"]).tools] == [
        "whoami",
        "boom",
    ]
    assert {t["name"] for t in tools_of(whole, tag="ops").tools} == {"boom", "down", "text"}


REFUSED: dict[str, tuple[Any, str]] = {
    "swagger": ({"swagger": "2.0", "paths": {}}, "Swagger 2.0"),
    "openapi 2": ({"openapi": "2.0", "paths": {}}, "not an OpenAPI 3.x document"),
    "no version": ({"paths": {}}, "no openapi field"),
    "not an object": ([], "a JSON object"),
    "no operations": (document({}), "no operations"),
    "bad path item": (document({"/a": []}), "not a Path Item Object"),
    "nameless parameter": (
        document({"/a": {"get": operation(parameters=[{"in": "query"}])}}),
        "a parameter without a name",
    ),
    "remote ref": (document({"/a": {"$ref": "other.yaml#/x"}}), "is not local"),
    "dangling ref": (document({"/a": {"$ref": "#/nope"}}), "cannot be resolved"),
    "self ref": (
        document({}, components={"schemas": {"A": {"items": {"$ref": "#/components/schemas/A"}}}}),
        "$ref cycle",
    ),
    "deep": (None, ""),  # built below
}


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_documents_refused_with_the_reason(case: str) -> None:
    given, reason = REFUSED[case]
    if case == "deep":
        given = document({"/a": {"get": operation(x=_nested(MAX_DEPTH + 5))}})
        reason = f"deeper than {MAX_DEPTH}"
    with pytest.raises(OpenApiRefused, match=reason.replace("$", r"\$").replace(".", r"\.")):
        tools_of(given)


def test_a_ref_blow_up_is_bounded() -> None:
    # Each level references the one below twice: 2^18 leaves once inlined.
    schemas: dict[str, Any] = {
        f"L{i}": {"anyOf": [{"$ref": f"#/components/schemas/L{i + 1}"}] * 2} for i in range(18)
    }
    schemas["L18"] = {"type": "string"}
    with pytest.raises(OpenApiRefused, match="too large once its \\$refs are inlined"):
        inlined(document({}, components={"schemas": schemas}))


def test_selections_refused() -> None:
    whole = rest_api(Seen()).openapi()
    with pytest.raises(OpenApiRefused, match="no operation nope, zip"):
        tools_of(whole, operations=["zip", "nope", "boom"])
    with pytest.raises(OpenApiRefused, match="no operation is tagged 'x'"):
        tools_of(whole, tag="x")
    many = {f"/p{i}": {"get": operation()} for i in range(MAX_OPERATIONS + 1)}
    with pytest.raises(OpenApiRefused, match=f"over {MAX_OPERATIONS}"):
        tools_of(document(many))


def test_json_pointer_escapes_and_sibling_descriptions() -> None:
    schemas = {"a/b~c": {"type": "string", "description": "inner"}}
    ref = {"$ref": "#/components/schemas/a~1b~0c", "description": "outer"}
    done = inlined(document({}, components={"schemas": schemas}, x=ref))
    assert done["x"] == {"type": "string", "description": "outer"}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"openapi": "3.1.0", "paths": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
        b"a: " + b"[" * 5000 + b"]" * 5000,
    ],
)
def test_deep_nesting_is_refused_not_a_crash(body: bytes) -> None:
    with pytest.raises(OpenApiRefused, match="nests"):
        parse_document(body)


def test_yaml_documents_and_aliases() -> None:
    assert parse_document(b"openapi: 3.1.0\npaths: {}\n") == {"openapi": "3.1.0", "paths": {}}
    with pytest.raises(OpenApiRefused, match="aliases"):
        parse_document(b"a: &x [1, 2]\nb: *x\n")
    with pytest.raises(OpenApiRefused, match="neither JSON nor YAML"):
        parse_document(b"a: [")


def test_the_base_url() -> None:
    api = tools_of(document({"/a": {"get": operation()}}, servers=[{"url": "/v1"}]))
    assert (
        base_url_of(api, None, "https://api.example/docs/openapi.json") == "https://api.example/v1"
    )
    assert base_url_of(api, "https://other.example", None) == "https://other.example"
    with pytest.raises(OpenApiRefused, match="give the API's base URL"):
        base_url_of(api, None, None)  # relative, and the document came inline
    templated = tools_of(
        document({"/a": {"get": operation()}}, servers=[{"url": "https://{region}.api.example"}])
    )
    with pytest.raises(OpenApiRefused, match="has variables"):
        base_url_of(templated, None, None)


@pytest.mark.parametrize("path", ["@evil.example/x", ".evil.example/x", ":8443/x", "x/y", ""])
def test_a_path_that_does_not_begin_with_a_slash_is_refused(path: str) -> None:
    """Joined to the base URL, such a path names another host or port, which
    would be sent the call's credential (OpenAPI 3.1 §4.8.8.1: paths begin
    with /)."""
    with pytest.raises(OpenApiRefused, match="does not begin with /"):
        tools_of(document({path: {"get": operation(operationId="x")}}))


@pytest.mark.parametrize(
    "body",
    [
        b"openapi: 3.1.0\ninfo: {title: t, version: 2024-01-01}\npaths: {}\n",  # a YAML date
        b"openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx: 2001-12-14t21:59:43.10-05:00\n"
        b"paths: {}\n",
        b"openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\nx: .nan\n",
        b"openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\nx: .inf\n",
        b'{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}, "x": NaN}',
        b'{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}, "x": 1e999}',
    ],
)
def test_a_value_json_cannot_carry_is_refused_not_a_crash(body: bytes) -> None:
    """Refused as the document's fault (422), never a TypeError (500), and no
    NaN or infinity reaches a stored schema."""
    with pytest.raises(OpenApiRefused):
        tools_of(parse_document(body))
