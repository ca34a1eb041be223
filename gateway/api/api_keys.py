"""`/api-keys`: API keys for scripts and services (`gateway.delegation.api_keys`).

Anyone signed in makes, lists and revokes their own keys; an admin also
those of other users and services. A key is shown once, in the answer that
makes it. Another user's key is "not found", as their tasks are.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gateway.api.state import audited, state_of
from gateway.delegation.api_keys import (
    ApiKeyInfo,
    ApiKeySpec,
    CreatedKey,
    Creator,
)
from gateway.http.auth import CurrentPrincipal
from gateway.http.problems import Problem
from policies.api_keys import ApiKeyError, ApiKeyRefused
from policies.tokens import Principal

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


def _creator(principal: Principal) -> Creator:
    try:
        return Creator.of(principal)
    except ApiKeyRefused as exc:
        raise Problem(403, "api-key-refused", "API key refused", str(exc)) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Make an API key (shown once, in this answer)",
)
async def create_key(request: Request, spec: ApiKeySpec, principal: CurrentPrincipal) -> CreatedKey:
    creator = _creator(principal)
    try:
        created = await state_of(request).api_keys.create(spec, creator)
    except ApiKeyError as exc:
        raise Problem(400, "invalid-api-key", "Invalid API key", str(exc)) from None
    except ApiKeyRefused as exc:
        raise Problem(403, "api-key-refused", "API key refused", str(exc)) from None
    await audited(request, principal, "api_key.created", created.prefix)
    return created


@router.get("", summary="API keys: yours, or every one for an admin")
async def list_keys(request: Request, principal: CurrentPrincipal) -> list[ApiKeyInfo]:
    creator = _creator(principal)
    owner = None if creator.admin else (creator.subject, creator.issuer)
    return await state_of(request).api_keys.listing(owner)


async def _visible(request: Request, principal: Principal, key_id: str) -> ApiKeyInfo:
    creator = _creator(principal)
    info = await state_of(request).api_keys.get(key_id)
    mine = info is not None and (
        not info.service
        and (info.owner_subject, info.owner_issuer) == (creator.subject, creator.issuer)
    )
    if info is None or not (mine or creator.admin):
        raise Problem(404, "not-found", "No such API key", f"no API key {key_id}")
    return info


@router.get("/{key_id}", summary="One API key (never its secret)")
async def get_key(request: Request, key_id: str, principal: CurrentPrincipal) -> ApiKeyInfo:
    return await _visible(request, principal, key_id)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key: refused on every replica within a second",
)
async def revoke_key(request: Request, key_id: str, principal: CurrentPrincipal) -> Response:
    info = await _visible(request, principal, key_id)
    await state_of(request).api_keys.revoke(key_id)
    await audited(request, principal, "api_key.revoked", info.prefix)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
