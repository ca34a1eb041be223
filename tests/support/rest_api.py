"""A real REST API on FastAPI, for federating by its own ``/openapi.json``
(`registry.openapi_tools`): what it was sent is kept, so a test can see
which credential reached it and that a refused call sent nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from gateway.demo.vendor import Vendor


class Item(BaseModel):
    id: int
    name: str
    price: float


class NewItem(BaseModel):
    name: str
    price: float


@dataclass
class Seen:
    """The requests the API was sent: (method, raw path, query, headers)."""

    requests: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    def credentials(self, header: str = "authorization") -> list[str | None]:
        return [headers.get(header) for _, _, _, headers in self.requests]


def rest_api(seen: Seen) -> FastAPI:
    app = FastAPI(title="Stock API", version="1.2.0")
    items: dict[int, Item] = {1: Item(id=1, name="bolt", price=0.25)}

    @app.middleware("http")
    async def keep(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.url.path != "/openapi.json":
            seen.requests.append(
                (
                    request.method,
                    request.scope["raw_path"].decode(),  # as sent, not decoded
                    request.url.query,
                    {k.lower(): v for k, v in request.headers.items()},
                )
            )
        return await call_next(request)

    @app.get("/items/{item_id}", operation_id="get_item", tags=["items"], summary="Get an item")
    async def get_item(item_id: int, x_trace: Annotated[str | None, Header()] = None) -> Item:
        """One item of the stock, by its id."""
        if item_id not in items:
            raise HTTPException(404, f"no item {item_id}")
        return items[item_id]

    @app.get("/items", operation_id="list_items", tags=["items"], summary="List items")
    async def list_items(limit: int = 10) -> list[Item]:
        return list(items.values())[:limit]

    @app.post("/items", status_code=201, tags=["items"], summary="Add an item")
    async def create_item(new: NewItem) -> Item:  # FastAPI names it create_item_items_post
        item = Item(id=max(items) + 1, **new.model_dump())
        items[item.id] = item
        return item

    @app.get("/whoami", operation_id="whoami", tags=["me"])
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"authorization": request.headers.get("authorization")}

    @app.get("/boom", operation_id="boom", tags=["ops"])
    async def boom() -> dict[str, str]:
        raise HTTPException(500, "the stock database is on fire")

    @app.get("/down", operation_id="down", tags=["ops"])
    async def down() -> Response:
        return Response("upstream maintenance", status_code=503)

    @app.get("/text", operation_id="text", tags=["ops"], response_class=PlainTextResponse)
    async def text() -> str:
        return "plain words"

    return app


def vendor_api(vendor: Vendor, seen: Seen, url: str) -> FastAPI:
    """A REST API that trusts only ``vendor``'s authorization server (its
    tokens, issued for this API's URL: RFC 8707), and says so in its
    protected resource metadata (RFC 9728 §3) -- the ``user_oauth`` case."""
    app = FastAPI(title="Notes API", version="1")
    resource = url + "/"

    @app.get("/.well-known/oauth-protected-resource", include_in_schema=False)
    async def metadata() -> dict[str, Any]:
        return {
            "resource": resource,
            "authorization_servers": [vendor.url],
            "scopes_supported": ["notes:read"],
        }

    @app.get("/whoami", operation_id="whoami", summary="Who the bearer token speaks for")
    async def whoami(request: Request) -> dict[str, Any]:
        bearer = request.headers.get("authorization", "")
        seen.requests.append(("GET", "/whoami", "", {"authorization": bearer}))
        token = vendor.provider.access.get(bearer.removeprefix("Bearer "))
        if token is None or (token.resource or "").rstrip("/") != url:
            raise HTTPException(401, "invalid token", {"WWW-Authenticate": "Bearer"})
        return {"subject": token.subject}

    return app
