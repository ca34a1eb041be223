"""Published metadata: the gateway's JWKS and RFC 9728 protected resource metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.api.state import state_of
from gateway.http.auth import PROTECTED_RESOURCE_PATH
from gateway.http.problems import Problem
from gateway.mcp.auth import MCP_METADATA_PATH, MCP_PATH, mcp_resource
from gateway.mcp.sets import set_path_name
from policies.scopes import ADMIN_SCOPE

router = APIRouter(tags=["well-known"])


@router.get("/.well-known/jwks.json", summary="The gateway's public signing keys")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    # Short enough that a rotated key is picked up quickly by verifiers.
    response.headers["Cache-Control"] = "public, max-age=300"
    return await state_of(request).keys.public_jwks()


@router.get(PROTECTED_RESOURCE_PATH, summary="OAuth 2.0 protected resource metadata (RFC 9728)")
async def protected_resource(request: Request) -> dict[str, Any]:
    settings = state_of(request).settings
    issuers = [settings.effective_public_url, *(i.issuer for i in settings.trusted_issuers)]
    return {
        "resource": settings.effective_resource_id,
        "authorization_servers": issuers,
        "jwks_uri": settings.effective_public_url + "/.well-known/jwks.json",
        "bearer_methods_supported": ["header"],
        "scopes_supported": [ADMIN_SCOPE],
        "resource_signing_alg_values_supported": ["ES256"],
        "resource_name": "Switchboard gateway",
    }


@router.get(MCP_METADATA_PATH, summary="Protected resource metadata of the MCP endpoint")
async def mcp_protected_resource(request: Request) -> dict[str, Any]:
    """RFC 9728 §3.1: the metadata of resource ``{gateway}/mcp`` lives at the
    well-known path with the resource's path appended; MCP clients find it
    from the 401's ``resource_metadata`` and ask for tokens for ``resource``."""
    return _mcp_metadata(request, MCP_PATH, "Switchboard MCP gateway")


@router.get(
    MCP_METADATA_PATH + "/{set_name}",
    summary="Protected resource metadata of a virtual MCP server (/mcp/{name})",
)
async def set_protected_resource(request: Request, set_name: str) -> dict[str, Any]:
    """A virtual server is a resource of its own (RFC 9728 §3.1)."""
    cache = state_of(request).mcp_sets
    found = await cache.get(set_name) if set_path_name(MCP_PATH + "/" + set_name) else None
    if found is None:
        raise Problem(404, "not-found", "Not found", f"no MCP server {set_name!r} here")
    return _mcp_metadata(request, found.path(), found.title)


def _mcp_metadata(request: Request, path: str, name: str) -> dict[str, Any]:
    settings = state_of(request).settings
    issuers = [settings.effective_public_url, *(i.issuer for i in settings.trusted_issuers)]
    return {
        "resource": mcp_resource(request, path),
        "authorization_servers": issuers,
        "jwks_uri": settings.effective_public_url + "/.well-known/jwks.json",
        "bearer_methods_supported": ["header"],
        "scopes_supported": sorted(settings.mcp_required_scopes),
        "resource_signing_alg_values_supported": ["ES256"],
        "resource_name": name,
    }
