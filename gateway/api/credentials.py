"""Agent credentials (`/agents/{id}/credentials`, admin): what an agent uses to
prove who it is at `/oauth/token`. A secret is shown once, in the response
that creates it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api.state import audited, state_of
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from policies.client_auth import ClientAuthError
from registry.store import AgentNotFound

router = APIRouter(prefix="/agents", tags=["credentials"])


class CredentialRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["client_secret", "private_key_jwt"] = "client_secret"
    jwks: dict[str, Any] | None = Field(
        default=None, description="for private_key_jwt: the agent's public keys (JWKS)"
    )

    @model_validator(mode="after")
    def _jwks_for_keys(self) -> CredentialRequest:
        if (self.method == "private_key_jwt") != (self.jwks is not None):
            raise ValueError("jwks is required for private_key_jwt and only for it")
        return self


class CredentialInfo(BaseModel):
    client_id: str
    method: str
    created_at: datetime
    token_endpoint: str
    client_secret: str | None = Field(
        default=None, description="only in the response that created it; store it now"
    )


@router.post(
    "/{agent_id}/credentials",
    status_code=status.HTTP_201_CREATED,
    summary="Issue (or replace) the credential an agent acts with",
)
async def issue_credentials(
    request: Request,
    response: Response,
    agent_id: str,
    admin: AdminPrincipal,
    body: Annotated[CredentialRequest | None, Body()] = None,
) -> CredentialInfo:
    state = state_of(request)
    body = body or CredentialRequest()
    secret: str | None = None
    if body.method == "client_secret":
        secret = await state.credentials.issue_secret(agent_id)
    else:
        try:
            await state.credentials.set_jwks(agent_id, body.jwks)
        except ClientAuthError as exc:
            raise Problem(422, "invalid-jwks", "The JWKS cannot be used", str(exc)) from None
    response.headers["Cache-Control"] = "no-store"
    info = await _info(request, agent_id)
    await audited(request, admin, "agent.credential_issued", agent_id, detail=body.method)
    return info.model_copy(update={"client_secret": secret})


@router.get("/{agent_id}/credentials", summary="How the agent authenticates (never the secret)")
async def get_credentials(request: Request, agent_id: str, _: AdminPrincipal) -> CredentialInfo:
    return await _info(request, agent_id)


@router.delete(
    "/{agent_id}/credentials",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the agent's credential",
)
async def revoke_credentials(request: Request, agent_id: str, admin: AdminPrincipal) -> Response:
    if not await state_of(request).credentials.revoke(agent_id):
        raise AgentNotFound(f"{agent_id} (or it has no credential)")
    await audited(request, admin, "agent.credential_revoked", agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _info(request: Request, agent_id: str) -> CredentialInfo:
    state = state_of(request)
    credential = await state.credentials.get(agent_id)
    if credential is None:
        raise AgentNotFound(f"{agent_id} (or it has no credential)")
    return CredentialInfo(
        client_id=credential.client_id,
        method=credential.method.value,
        created_at=credential.created_at,
        token_endpoint=state.settings.token_endpoint,
    )
