"""`gateway.http.limits.BodyLimitMiddleware`: which bodies it screens as
JSON (`gateway.http.json_body.screen`). A door that reads a body as JSON
whatever its content type says, or a route reading one sent with none, must
not be a way round the rules; a form or a YAML document is not JSON."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from gateway.http.limits import BodyLimitMiddleware

NAN = b'{"x": NaN}'


def _client() -> TestClient:
    app = FastAPI()

    @app.post("/{path:path}")
    async def took(request: Request) -> dict[str, int]:
        return {"took": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, max_bytes=10_000, max_json_depth=8)
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/flows/f/runs", "application/json"),
        ("/flows/f/runs", "application/merged-patch+json"),
        ("/flows/f/runs", None),  # FastAPI reads a body with no type as JSON
        ("/flows/f/runs", ""),
        ("/a2a/sales", "text/plain"),  # the A2A door reads JSON whatever it says
        ("/a2a/sales/message:send", "text/plain"),
        ("/a2a/sales/push/r1", "application/octet-stream"),
        ("/mcp", "text/plain"),
    ],
)
def test_a_body_read_as_json_is_screened(path: str, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    with _client() as client:
        answer = client.post(path, content=NAN, headers=headers)
    assert answer.status_code in (200, 400), answer.text
    assert "took" not in answer.json(), (path, content_type)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "application/yaml", "text/plain"]
)
def test_a_body_that_is_not_json_is_left_to_its_route(content_type: str) -> None:
    with _client() as client:
        answer = client.post("/ui/flows", content=NAN, headers={"content-type": content_type})
    assert answer.json() == {"took": len(NAN)}
