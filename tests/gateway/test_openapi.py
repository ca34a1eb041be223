"""The OpenAPI document says what the REST API does: which operations need a
bearer token, and that every error is an RFC 9457 problem document (the
schema-driven fuzzer in tests/fuzz holds the live API to it).

And a 405 names every method its resource supports (RFC 9110 §15.5.6), not
only those of the first route that matched the path -- which the fuzzer found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.http.problems import PROBLEM_JSON
from gateway.settings import Settings


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    return create_app(Settings(dev=True, data_dir=tmp_path)).openapi()


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def test_secured_operations_name_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = _operations(document)
    secured = {name for name, op in operations.items() if op.get("security") == [{"bearer": []}]}
    public = set(operations) - secured
    assert public == {
        "GET /healthz",
        "GET /readyz",
        "GET /.well-known/jwks.json",
        "GET /.well-known/oauth-protected-resource",
        "GET /.well-known/oauth-protected-resource/mcp",
        "GET /.well-known/oauth-protected-resource/mcp/{set_name}",  # a virtual server's
        "GET /.well-known/oauth-authorization-server",
        "POST /oauth/token",
        # the gateway's OAuth Client ID Metadata Document: authorization servers fetch it
        "GET /oauth/client-metadata.json",
        "GET /flows/schema",  # the published JSON Schema of flow documents
        # authenticated by its Standard Webhooks signature, not a bearer token
        "POST /flows/{flow_id}/hooks/{trigger_id}",
    }
    for name in secured:
        assert {"401", "403"} <= set(operations[name]["responses"]), name


def test_every_error_is_a_problem_document(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for name, operation in _operations(document).items():
        responses = operation["responses"]
        assert "default" in responses, name
        for status, response in responses.items():
            if status.startswith(("2", "3")):
                continue
            if name == "POST /oauth/token" and status in ("400", "401"):
                assert list(response["content"]) == ["application/json"]  # RFC 6749 §5.2
                continue
            assert list(response["content"]) == [PROBLEM_JSON], (name, status)
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert "404" in responses, name


def test_the_token_endpoint_documents_its_form(document: dict[str, Any]) -> None:
    token = document["paths"]["/oauth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"grant_type", "subject_token", "subject_token_type"} <= set(form["required"])


def test_the_audit_export_is_documented(document: dict[str, Any]) -> None:
    content = document["paths"]["/audit"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/jsonl"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/agents/x", "GET, DELETE"),
        ("PUT", "/agents", "GET, POST"),
        ("PATCH", "/agents/x/credentials", "GET, POST, DELETE"),
        ("OPTIONS", "/approvals/x", "GET, POST"),
        ("PUT", "/healthz", "GET"),
    ],
)
def test_a_405_names_every_method_of_the_resource(
    tmp_path: Path, method: str, path: str, allowed: str
) -> None:
    client = TestClient(create_app(Settings(dev=True, data_dir=tmp_path)))
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["type"] == "urn:switchboard:problem:method-not-allowed"
