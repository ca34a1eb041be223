"""`/docs`: Swagger UI served by the gateway itself, so it renders offline.

FastAPI's own `/docs` page loads Swagger UI from a CDN: without internet it is
blank, and it would run a third party's script with the page's authority.
Here the files come from the `swagger-ui-bundle-v2` package (installed from
PyPI with the gateway, never copied into the repository), served under
`/docs/static/`, and the page's one script of our own is a file too: no
inline script, so the page keeps a Content-Security-Policy that allows only
this origin (Swagger UI needs inline styles and `data:` images for its icons).
The OpenAPI document declares the bearer scheme (`gateway.http.auth.BEARER`),
so "Authorize" takes a token; `/a2a/{id}` and `/mcp` are described in its
introduction (`gateway.http.openapi.DESCRIPTION`).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"><noscript>Swagger UI needs JavaScript; the document itself is
<a href="{openapi}">{openapi}</a>.</noscript></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
# validatorUrl null: Swagger UI would otherwise show a badge fetched from
# validator.swagger.io, sending it the document's URL.
INIT = """window.ui = SwaggerUIBundle({
  url: %s,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  validatorUrl: null
});
"""
HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI) -> None:
    """Serve `/docs` (the app must be created with ``docs_url=None``)."""
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        html = PAGE.format(title=app.title, openapi=openapi)
        return HTMLResponse(html, headers=HEADERS)

    @app.get("/docs/init.js", include_in_schema=False)
    async def init(request: Request) -> Response:
        return Response(INIT % json.dumps(openapi), media_type="text/javascript", headers=HEADERS)

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")
