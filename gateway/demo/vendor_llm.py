"""The vendor's OpenAI-compatible chat API (`gateway.demo.vendor`), at
``{vendor}/llm/v1``: what a gateway-run vendor agent registered with
`user_oauth` calls, each call with its user's own token.

It trusts only the vendor's own OAuth logins, as an OAuth 2.0 protected
resource does (RFC 9728): a request without a token the vendor issued for
this resource (RFC 8707) is answered 401 with ``WWW-Authenticate`` naming its
protected resource metadata, served at
``/.well-known/oauth-protected-resource/llm/v1``, which names the vendor's
authorization server. A chat completion answers with the vendor user the
token speaks for; a request whose messages ask to ``write`` (the user's, or
a skill's instructions in the system prompt) needs ``notes:write`` (else
403 ``insufficient_scope``, RFC 6750 §3.1). Streamed (``"stream": true``),
the answer is one chunk, then ``[DONE]``. Every call is recorded in the
vendor's `calls` as ``{"tool": "chat", ...}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.demo.vendor_agent import VendorSide

PATH = "/llm/v1"
METADATA_PATH = "/.well-known/oauth-protected-resource" + PATH


def llm_app(vendor: VendorSide) -> ASGIApp:
    resource = vendor.url + PATH
    metadata = vendor.url + METADATA_PATH

    def refused(status: int, error: str, extra: str = "") -> Response:
        challenge = f'Bearer error="{error}"{extra}, resource_metadata="{metadata}"'
        return JSONResponse(
            {"error": {"message": error, "type": error}},
            status_code=status,
            headers={"WWW-Authenticate": challenge},
        )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.url.path == METADATA_PATH:
            document = {
                "resource": resource,
                "authorization_servers": [vendor.url],
                "scopes_supported": list(vendor.scopes),
                "bearer_methods_supported": ["header"],
            }
            await JSONResponse(document)(scope, receive, send)
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = vendor.access.get(value) if scheme.lower() == "bearer" else None
        if token is not None and token.expires_at is not None and token.expires_at < time.time():
            token = None
        if token is not None and token.resource not in (resource, resource + "/"):
            token = None  # issued for another resource (RFC 8707), or for none
        if token is None:
            await refused(401, "invalid_token")(scope, receive, send)
            return
        if request.url.path != PATH + "/chat/completions" or request.method != "POST":
            await JSONResponse({"error": {"message": "not found"}}, 404)(scope, receive, send)
            return
        try:
            body = json.loads(await request.body())
            text = " ".join(str(m["content"]) for m in body["messages"]).lower()
        except (ValueError, KeyError, IndexError, TypeError):
            await JSONResponse({"error": {"message": "bad request"}}, 400)(scope, receive, send)
            return
        if "write" in text and "notes:write" not in token.scopes:
            scope_said = ', scope="notes:read notes:write"'
            await refused(403, "insufficient_scope", scope_said)(scope, receive, send)
            return
        _record(vendor, token)
        said = f"{token.subject} wrote" if "write" in text else f"you are {token.subject}"
        answer = _stream(said) if body.get("stream") else JSONResponse(_completion(said))
        await answer(scope, receive, send)

    return app


def _record(vendor: VendorSide, token: AccessToken) -> None:
    vendor.calls.append(
        {
            "tool": "chat",
            "subject": token.subject,
            "scopes": list(token.scopes),
            "client_id": token.client_id,
            "token": token.token,
        }
    )


def _completion(said: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-vendor",
        "object": "chat.completion",
        "model": "vendor",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": said}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _stream(said: str) -> Response:
    chunk = {"choices": [{"index": 0, "delta": {"content": said}}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    return Response(body, media_type="text/event-stream")
