"""`POST /oauth/token`: RFC 8693 token exchange for agents delegating onwards.

An agent that received a delegated token (aud = itself) and wants to hand
part of the work to another agent asks here. The order of checks:

1. who is asking: client authentication (secret or `private_key_jwt`) and/or
   an `actor_token` signed with the agent's key -> the calling agent;
2. which target: `resource` (the agent's resource id or its A2A URL at this
   gateway) or `audience` (the agent id) -> exactly one registered agent;
   named by its A2A URL here, the target may also be an MCP server, and the
   token is for that URL: the agent calls onwards through the gateway;
3. on whose behalf: the `subject_token` -- a token this gateway minted *for
   the calling agent* (its `aud` must be the caller's resource: a token
   presented by anyone else is refused), or a trusted user token;
4. the decision (`policies.policy.authorize`), with the actor chain grown by
   the caller: depth limit, cycles, scopes only shrink;
5. mint, audit, answer (RFC 8693 §2.2.1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from adapters.core_check import outside_a_call
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.call import Call
from gateway.delegation.permits import txn_of
from gateway.delegation.pipeline import (
    Caller,
    DelegationDenied,
    Delegations,
    Permit,
    RateLimited,
)
from gateway.delegation.replay import ReplayCache
from policies.client_auth import (
    ClientAuthError,
    parse_basic_credentials,
    secret_matches,
    unverified_issuer,
    verify_client_assertion,
)
from policies.delegation import actors_of
from policies.exchange import ACCESS_TOKEN_TYPE, ExchangeRequest, OAuthError
from policies.jws import unverified_claims
from policies.policy import Denial, Target
from policies.tokens import TokenInvalid, TokenVerifier, first_actor
from registry.credentials import CredentialMethod, SqlCredentialStore
from registry.mcp_store import SqlMcpStore
from registry.store import SqlAgentStore

# RFC 8693 §2.2.2 / RFC 6749 §5.2 codes for each reason a decision can deny.
_DENIAL_ERRORS = {
    Denial.SCOPE_EXCEEDS_SUBJECT: "invalid_scope",
    Denial.MISSING_SCOPE: "invalid_scope",
    Denial.CARD_REQUIREMENT: "invalid_scope",
    Denial.DEPTH: "invalid_target",
    Denial.CYCLE: "invalid_target",
    Denial.POLICY: "invalid_target",
    Denial.UNKNOWN_ACTION: "invalid_target",
}


@dataclass(frozen=True)
class ExchangeContext:
    basic_authorization: str | None
    trace_id: str


class TokenExchange:
    def __init__(
        self,
        *,
        delegations: Delegations,
        agents: SqlAgentStore,
        credentials: SqlCredentialStore,
        verifier: TokenVerifier,
        replay: ReplayCache,
        audit: AuditLog,
        issuer: str,
        token_endpoint: str,
        leeway_seconds: int,
        mcp_servers: SqlMcpStore | None = None,
    ) -> None:
        self._mcp_servers = mcp_servers
        self._delegations = delegations
        self._agents = agents
        self._credentials = credentials
        self._verifier = verifier
        self._replay = replay
        self._audit = audit
        self._issuer = issuer
        self._token_endpoint = token_endpoint
        self._leeway = leeway_seconds
        self._a2a_prefix = issuer + "/a2a/"

    async def exchange(self, request: ExchangeRequest, context: ExchangeContext) -> dict[str, Any]:
        started = time.perf_counter()
        caller_id = await self._authenticate(request, context)
        target_id, front_door = await self._target(request)
        caller = await self._caller(request, context, caller_id, target_id, started)
        grant = await self._decide(caller, target_id, front_door, request, context)
        await self._issuable(grant, target_id, front_door)
        await self._issued(grant, "ok")
        response: dict[str, Any] = {
            "access_token": grant.token.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": max(0, grant.token.expires_at - int(time.time())),
            "scope": " ".join(sorted(grant.token.scopes)),
        }
        return response

    async def _caller(
        self,
        request: ExchangeRequest,
        context: ExchangeContext,
        caller_id: str,
        target_id: str,
        started: float,
    ) -> Caller:
        """3. On whose behalf: the subject token's user, with the calling agent
        added to the actor chain (a subject token refused is audited)."""
        caller_record = await self._agents.get(caller_id)
        if caller_record is None:  # deleted between authentication and now
            raise OAuthError("invalid_client", "the calling agent is not registered", 401)
        try:
            subject = await self._subject(request.subject_token, caller_record.resource)
        except TokenInvalid as exc:
            await self._audit.record(
                AuditEvent(
                    event="token_exchange",
                    trace_id=context.trace_id,
                    subject="(unverified)",
                    subject_issuer="(unverified)",
                    client_id=caller_id,
                    actors=(caller_id,),
                    target=target_id,
                    scopes_requested=request.scope,
                    decision="deny",
                    reasons=(f"subject_token refused: {exc}",),
                    outcome="invalid_grant",
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            )
            raise OAuthError("invalid_grant", f"subject_token: {exc}") from None
        return Caller(
            subject=subject.subject,
            issuer=subject.issuer,
            scopes=subject.scopes,
            actors=(*subject.actors, caller_id),
            client_id=caller_id,
            not_after=subject.usable_until,
            txn=subject.txn,
        )

    async def _decide(
        self,
        caller: Caller,
        target_id: str,
        front_door: str | None,
        request: ExchangeRequest,
        context: ExchangeContext,
    ) -> Permit:
        """4. The decision and the token, its refusals as OAuth errors."""
        try:
            if front_door is not None and await self._is_mcp_server(target_id):
                # An MCP server is reached only through its front door here.
                return await self._delegations.admit(
                    Call(
                        caller,
                        Target(target_id),
                        event="token_exchange",
                        trace_id=context.trace_id,
                        kind="tool",
                        audience=front_door,
                        requested=request.scope,
                        sends=False,
                    )
                )
            return await self._delegations.admit(
                Call(
                    caller,
                    target_id,
                    event="token_exchange",
                    trace_id=context.trace_id,
                    audience=front_door,
                    requested=request.scope,
                    sends=False,
                )
            )
        except RateLimited as limited:
            # RFC 6749 §5.2 has no code for it: `temporarily_unavailable` (its
            # §4.1.2.1 name for "try again later") with 429 and Retry-After.
            raise OAuthError(
                "temporarily_unavailable",
                "; ".join(limited.decision.reasons),
                status=429,
                retry_after=limited.retry_after,
            ) from None
        except DelegationDenied as denied:
            decision = denied.decision
            assert decision.denial is not None
            raise OAuthError(_DENIAL_ERRORS[decision.denial], "; ".join(decision.reasons)) from None
        except TokenInvalid as exc:  # the subject token expired between check and mint
            raise OAuthError("invalid_grant", str(exc)) from None

    async def _issuable(self, grant: Permit, target_id: str, front_door: str | None) -> None:
        """A token the policy allows may still not be given to the client to
        send itself: calls that the gateway must see are refused (recorded)."""
        if front_door is None and self._delegations.policy.current.coordination.names(target_id):
            # A token for the agent itself would let it be called past the
            # coordination rules, which read each call's input at the gateway.
            await self._issued(grant, "denied", "coordinated: not issued")
            raise OAuthError(
                "invalid_target",
                f"calls to {target_id} are kept to coordination rules; call it through the "
                f"gateway: ask for resource={self._a2a_prefix}{target_id}",
            )
        if grant.decision.approval_required and (
            front_door is None or await self._is_mcp_server(target_id)
        ):
            # A token for the agent itself would skip the approval step: such
            # calls must go through the gateway, where they wait for a human
            # (a token for an agent's A2A front door here is one: the door
            # holds the call; an MCP server's front door takes no such token).
            await self._issued(grant, "denied", "approval required: not issued")
            raise OAuthError(
                "invalid_target",
                f"delegating to {target_id} needs human approval; call it through the gateway",
            )

    # 1. Who is asking -------------------------------------------------------

    async def _issued(self, grant: Permit, outcome: str, detail: str | None = None) -> None:
        """The record of a token issued (or not) to a client that makes the
        call itself: a decision and a token, but no send of the gateway's --
        a named exemption from the core check (`adapters.core_check`)."""
        with outside_a_call("token exchange: the client sends the call itself"):
            await self._delegations.record(grant, "token_exchange", outcome, detail)

    async def _authenticate(self, request: ExchangeRequest, context: ExchangeContext) -> str:
        identities: list[str] = []
        basic = context.basic_authorization
        if basic is not None:
            try:
                client_id, secret = parse_basic_credentials(basic)
            except ClientAuthError as exc:
                raise OAuthError("invalid_client", str(exc), 401) from None
            if request.client_secret is not None or request.client_assertion is not None:
                # RFC 6749 §2.3: a client MUST NOT use more than one method per request.
                raise OAuthError("invalid_request", "use one client authentication method")
            identities.append(await self._check_secret(client_id, secret))
        elif request.client_secret is not None:
            if request.client_id is None or request.client_assertion is not None:
                raise OAuthError("invalid_request", "client_secret needs client_id, and alone")
            identities.append(await self._check_secret(request.client_id, request.client_secret))
        elif request.client_assertion is not None:
            identities.append(await self._check_assertion(request.client_assertion))
        if request.actor_token is not None:
            identities.append(await self._check_assertion(request.actor_token))
        if not identities:
            raise OAuthError(
                "invalid_client",
                "authenticate the calling agent (client credentials or actor_token)",
                401,
            )
        if request.client_id is not None and request.client_id != identities[0]:
            raise OAuthError("invalid_client", "client_id does not match the credentials", 401)
        if len(set(identities)) != 1:
            raise OAuthError("invalid_request", "actor_token and client authentication disagree")
        return identities[0]

    async def _check_secret(self, client_id: str, secret: str) -> str:
        credential = await self._credentials.get(client_id)
        if (
            credential is None
            or credential.method != CredentialMethod.CLIENT_SECRET
            or not secret_matches(secret, credential.secret_hash)
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return credential.client_id

    async def _check_assertion(self, assertion: str) -> str:
        client_id = unverified_issuer(assertion)
        credential = await self._credentials.get(client_id) if client_id else None
        if (
            client_id is None
            or credential is None
            or credential.method != CredentialMethod.PRIVATE_KEY_JWT
            or credential.jwks is None
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        try:
            checked = verify_client_assertion(
                assertion,
                credential.jwks,
                client_id=client_id,
                audiences={self._token_endpoint, self._issuer},
                now=time.time(),
                leeway_seconds=self._leeway,
            )
        except ClientAuthError as exc:
            raise OAuthError("invalid_client", str(exc), 401) from None
        if not await self._replay.first_use(f"{client_id}:{checked.token_id}", checked.expires_at):
            raise OAuthError("invalid_client", "client assertion was already used (jti)", 401)
        return client_id

    # 2. Which target --------------------------------------------------------

    async def _target(self, request: ExchangeRequest) -> tuple[str, str | None]:
        """The target's id, and its front door URL when the resource named it:
        the token is then for that URL (RFC 8707), to call the target through
        this gateway, rather than for the target itself."""
        by_resource = by_audience = front_door = None
        if request.resource is not None:
            by_resource = await self._agents.id_for_resource(request.resource)
            if by_resource is None and request.resource.startswith(self._a2a_prefix):
                # The agent's (or MCP server's) front door at this gateway.
                candidate = request.resource[len(self._a2a_prefix) :].split("/", 1)[0]
                if await self._agents.get(candidate) is not None or await self._is_mcp_server(
                    candidate
                ):
                    by_resource = candidate
                    front_door = self._a2a_prefix + candidate
            if by_resource is None:
                raise OAuthError("invalid_target", "resource does not name a registered agent")
        if request.audience is not None:
            if await self._agents.get(request.audience) is None:
                raise OAuthError("invalid_target", "audience does not name a registered agent")
            by_audience = request.audience
        if by_resource is not None and by_audience is not None and by_resource != by_audience:
            raise OAuthError("invalid_target", "resource and audience name different agents")
        target = by_resource or by_audience
        assert target is not None
        return target, front_door

    async def _is_mcp_server(self, server_id: str) -> bool:
        return self._mcp_servers is not None and await self._mcp_servers.get(server_id) is not None

    # 3. On whose behalf ------------------------------------------------------

    async def _subject(self, token: str, caller_resource: str) -> _Subject:
        if _claims_delegation(token, self._issuer):
            principal = await self._verifier.verify(
                token, audience=caller_resource, issuer=self._issuer
            )
            actors = actors_of(principal.claims)
            if not actors:
                raise TokenInvalid("a delegated token must carry an act claim")
        else:
            principal = await self._verifier.verify(token)
            actors = (first_actor(principal),)
        delegated = principal.issuer == self._issuer and "act" in principal.claims
        return _Subject(
            subject=principal.subject,
            issuer=principal.issuer,
            scopes=principal.scopes,
            actors=actors,
            # When the verifier stops accepting it: what is minted from it ends by then.
            usable_until=principal.usable_until,
            # Carried on from a token of ours only (a user's IdP's says nothing of it).
            txn=txn_of(principal.claims) if delegated else None,
        )


@dataclass(frozen=True)
class _Subject:
    subject: str
    issuer: str
    scopes: frozenset[str]
    actors: tuple[str, ...]
    usable_until: float
    txn: str | None = None


def _claims_delegation(token: str, gateway_issuer: str) -> bool:
    """Whether ``token`` *claims* to be one this gateway minted for an agent.
    Routing only: the verification that follows checks the claim."""
    claims = unverified_claims(token)
    return claims is not None and claims.get("iss") == gateway_issuer and "act" in claims
