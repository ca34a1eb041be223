"""Every JSON body the gateway's API reads refuses keys it does not know.

A misspelt key ("decison", "reasn") that passed silently would be read as if
the caller had left it out: the request would do something other than what
was asked. So every body model, and every model nested in one, says
``extra="forbid"`` -- read here from the OpenAPI document, where that is
``additionalProperties: false``; the e2e tests show the 422 naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.app import create_app
from gateway.settings import Settings


def _objects(schema: Any, components: dict[str, Any], seen: set[str]) -> list[tuple[str, Any]]:
    """The object schemas with named properties in ``schema``, through $refs."""
    found: list[tuple[str, Any]] = []
    if isinstance(schema, list):
        for item in schema:
            found += _objects(item, components, seen)
    elif isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                found.append((name, components[name]))
                found += _objects(components[name], components, seen)
        for key, value in schema.items():
            if key != "$ref":
                found += _objects(value, components, seen)
    return found


def test_every_request_body_forbids_unknown_keys(tmp_path: Path) -> None:
    document = create_app(Settings(dev=True, data_dir=tmp_path)).openapi()
    components = document["components"]["schemas"]
    bodies: dict[str, list[tuple[str, Any]]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                bodies[f"{method.upper()} {path}"] = _objects(body["schema"], components, set())
    assert "POST /approvals/{approval_id}" in bodies  # the walk finds them
    lax = [
        f"{where}: {name}"
        for where, schemas in bodies.items()
        for name, schema in schemas
        if "properties" in schema and schema.get("additionalProperties") is not False
    ]
    assert lax == []
