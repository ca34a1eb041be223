"""Gateway-run agents: registering them, and building the adapter for a call.

An OpenAI-compatible endpoint or a REST webhook is registered with
`POST /vendor-agents`; the gateway checks the upstream URL (SSRF), the
mapping and the credential, writes an A2A card for it and stores both
(`registry.vendor_store`). A call then gets the adapter for the agent's
upstream (`adapters.openai_compat`, `adapters.rest_webhook`) and the
credentials to present: the API key -- opened from its sealed form or read
from the gateway's settings, never from the caller -- and, when the
registration names a header for it, the token minted for this call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from adapters.base import Adapter, Credentials
from adapters.errors import AdapterError, UpstreamFailed, UpstreamTimeout
from adapters.errors import UpstreamUnavailable as AdapterUnavailable
from adapters.http import UpstreamHTTP, UpstreamRefused
from adapters.mapping import MappingInvalid, compile_mapping
from adapters.openai_compat import ChatConfig, OpenAICompatAdapter
from adapters.rest_webhook import RestWebhookAdapter, WebhookConfig
from gateway.connections.upstream import Upstream
from gateway.delegation.breaker import BreakerOpen
from gateway.delegation.delegate import Explained
from gateway.delegation.retry import Failure, classify
from policies.keys import KeySealError, open_secret, seal_secret
from registry.service import slugify
from registry.signatures import SignatureCheck, SignatureStatus
from registry.store import AgentConflict, NewAgent, SqlAgentStore
from registry.vendor_cards import vendor_card
from registry.vendor_models import (
    CredentialInfo,
    OpenAIUpstream,
    UserOAuthInfo,
    VendorAgentRecord,
    VendorConfig,
    VendorRegistration,
    WebhookUpstream,
)
from registry.vendor_store import SqlVendorStore, StoredVendorAgent

SEAL_PURPOSE = "vendor-api-key"
CLIENT_SECRET_PURPOSE = "vendor-oauth-client-secret"  # noqa: S105 - a purpose, not a secret


class CredentialUnavailable(Exception):
    """The agent's API key cannot be had (a missing setting, a wrong sealing secret)."""


@dataclass(frozen=True)
class VendorCall:
    """Everything a call to one gateway-run agent needs, but the turn."""

    agent_id: str
    adapter: Adapter
    config: VendorConfig
    api_key: str | None

    def credentials(self, minted_token: str | None, user_token: str | None = None) -> Credentials:
        """``user_token``: the caller's own from their connection (`user_oauth`),
        as the Authorization header (RFC 6750 §2.1)."""
        headers: dict[str, str] = {}
        if user_token is not None:
            headers["Authorization"] = f"Bearer {user_token}"
        credential = self.config.credential
        if self.api_key is not None:
            header = credential.header
            bearer = header.lower() == "authorization"
            headers[header] = f"Bearer {self.api_key}" if bearer else self.api_key
        if self.config.token_header and minted_token:
            headers[self.config.token_header] = f"Bearer {minted_token}"
        return Credentials(headers)


class VendorRegistrationRefused(ValueError):
    """A registration the gateway cannot accept as it is. ``reason`` is a
    stable slug (``url-refused``, ``invalid-mapping``, ``unknown-secret``),
    ``title`` what it means; the REST API answers it as a 422 problem."""

    def __init__(self, reason: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.title = title
        self.detail = detail


class VendorAgents:
    def __init__(
        self,
        store: SqlVendorStore,
        agents: SqlAgentStore,
        http: UpstreamHTTP,
        *,
        public_url: str,
        sealing_secret: str | None,
        secrets: Mapping[str, SecretStr],
        dev: bool = False,
    ) -> None:
        """``dev``: authorization servers on plain http (``--dev`` only)."""
        self._dev = dev
        self.store = store
        self._agents = agents
        self.http = http
        self._public_url = public_url
        self._sealing_secret = sealing_secret
        self._secrets = secrets

    # Registration ---------------------------------------------------------

    async def register(self, registration: VendorRegistration) -> VendorAgentRecord:
        """Check everything, then store the card and the configuration at once."""
        upstream = registration.upstream
        url = upstream.base_url if isinstance(upstream, OpenAIUpstream) else upstream.url
        try:
            self.http.check_url(url)
        except UpstreamRefused as exc:
            raise VendorRegistrationRefused(
                "url-refused", "URL refused by the SSRF policy", str(exc)
            ) from None
        if isinstance(upstream, WebhookUpstream):
            try:
                compile_mapping(upstream.mapping)
            except MappingInvalid as exc:
                raise VendorRegistrationRefused(
                    "invalid-mapping", "The webhook mapping is invalid", str(exc)
                ) from None
        credential, sealed = self._credential(registration)
        user_oauth, client_secret = self._user_oauth(registration)
        agent_id = registration.id or await self._free_id(registration.name)
        parsed = vendor_card(registration, agent_id, f"{self._public_url}/a2a/{agent_id}")
        config = VendorConfig(
            upstream=upstream,
            skills=registration.skills,
            credential=credential,
            token_header=registration.token_header,
            user_oauth=user_oauth,
        )
        record = await self.store.create(
            NewAgent(
                id=agent_id,
                resource=registration.resource or f"urn:switchboard:agent:{agent_id}",
                card_url=None,
                parsed=parsed,
                signature=SignatureCheck(SignatureStatus.UNSIGNED, "written by the gateway"),
                pinned_keys=None,
                timeout_seconds=registration.timeout_seconds,
            ),
            config,
            sealed,
            client_secret,
        )
        return VendorAgentRecord(agent=record, config=config)

    def _user_oauth(
        self, registration: VendorRegistration
    ) -> tuple[UserOAuthInfo | None, str | None]:
        """What is kept of `user_oauth`: the client's secret sealed, apart."""
        given = registration.user_oauth
        if given is None:
            return None, None
        if given.authorization_server is not None:
            issuer = urlsplit(given.authorization_server)
            if issuer.query or issuer.fragment or (issuer.scheme != "https" and not self._dev):
                # RFC 8414 §2: an https URL without query or fragment (http in --dev).
                raise VendorRegistrationRefused(
                    "invalid-issuer",
                    "Not an authorization server's issuer",
                    "authorization_server is an https URL without query or fragment",
                )
            try:
                self.http.check_url(given.authorization_server)
            except UpstreamRefused as exc:
                raise VendorRegistrationRefused(
                    "url-refused", "URL refused by the SSRF policy", str(exc)
                ) from None
        sealed = (
            seal_secret(
                given.client_secret.get_secret_value(),
                self._sealing_secret,
                CLIENT_SECRET_PURPOSE,
            )
            if given.client_secret is not None
            else None
        )
        info = UserOAuthInfo(
            authorization_server=given.authorization_server,
            client_id=given.client_id,
            client_secret=sealed is not None,
            scope=given.scope,
        )
        return info, sealed

    def _credential(self, registration: VendorRegistration) -> tuple[CredentialInfo, str | None]:
        header = registration.api_key_header
        if registration.api_key is not None:
            sealed = seal_secret(
                registration.api_key.get_secret_value(), self._sealing_secret, SEAL_PURPOSE
            )
            return CredentialInfo(type="sealed", header=header), sealed
        if registration.api_key_secret is not None:
            name = registration.api_key_secret
            if name not in self._secrets:
                raise VendorRegistrationRefused(
                    "unknown-secret",
                    "No such secret in the gateway's settings",
                    f"set SWITCHBOARD_SECRETS__{name.upper()} (or secrets.{name} in the "
                    "config file) on every replica first",
                )
            return CredentialInfo(type="settings_secret", name=name, header=header), None
        return CredentialInfo(type="none", header=header), None

    async def _free_id(self, name: str) -> str:
        base = slugify(name)
        for n in range(1, 51):
            candidate = base if n == 1 else f"{base[:60]}-{n}"
            if not await self._agents.id_taken(candidate):
                return candidate
        raise AgentConflict(base)

    async def get(self, agent_id: str) -> VendorAgentRecord | None:
        stored = await self.store.get(agent_id)
        record = await self._agents.get(agent_id) if stored else None
        if stored is None or record is None:
            return None
        return VendorAgentRecord(agent=record, config=stored.config)

    # Calls ----------------------------------------------------------------

    async def call_for(self, agent_id: str) -> VendorCall | None:
        """The adapter and key for one call, or None: no such gateway-run agent.
        Raises `CredentialUnavailable` when the key cannot be had."""
        stored = await self.store.get(agent_id)
        if stored is None:
            return None
        return VendorCall(agent_id, self._adapter(stored), stored.config, self._api_key(stored))

    def _adapter(self, stored: StoredVendorAgent) -> Adapter:
        upstream = stored.config.upstream
        name = f"agent {stored.agent_id}"
        if isinstance(upstream, OpenAIUpstream):
            instructions = {s.id: s.instructions for s in stored.config.skills if s.instructions}
            chat = ChatConfig(
                base_url=upstream.base_url,
                model=upstream.model,
                system_prompt=upstream.system_prompt,
                skill_instructions=instructions,
                temperature=upstream.temperature,
                max_tokens=upstream.max_tokens,
                stream_usage=upstream.stream_usage,
            )
            return OpenAICompatAdapter(self.http.httpx, chat, name)
        webhook = WebhookConfig(upstream.url, upstream.method, compile_mapping(upstream.mapping))
        return RestWebhookAdapter(self.http.httpx, webhook, name)

    async def user_oauth_upstream(
        self, agent_id: str, *, with_secret: bool = False
    ) -> Upstream | None:
        """The agent as its users connect to it (`gateway.connections`); None
        unless it is a gateway-run agent registered with `user_oauth`. Its
        URL -- where the calls go -- is the resource its users' tokens are
        asked for (RFC 8707) and the only one they are sent to.
        ``with_secret``: the client's secret opened, for connecting (a call
        needs none: a connection refreshes with the client it was made
        with); raises `CredentialUnavailable` if it cannot be."""
        stored = await self.store.get(agent_id)
        if stored is None or stored.config.user_oauth is None:
            return None
        return self._upstream_of(stored, with_secret)

    def _upstream_of(self, stored: StoredVendorAgent, with_secret: bool) -> Upstream:
        info = stored.config.user_oauth
        assert info is not None
        secret = None
        if with_secret and stored.client_secret_sealed is not None:
            try:
                secret = open_secret(
                    stored.client_secret_sealed, self._sealing_secret, CLIENT_SECRET_PURPOSE
                )
            except KeySealError as exc:
                raise CredentialUnavailable(str(exc)) from None
        upstream = stored.config.upstream
        openai = isinstance(upstream, OpenAIUpstream)
        url = upstream.base_url if isinstance(upstream, OpenAIUpstream) else upstream.url
        return Upstream(
            id=stored.agent_id,
            url=url,
            client_id=info.client_id,
            client_secret=secret,
            scope=info.scope,
            issuer=info.authorization_server,
            # A webhook may act on any request: its protected resource metadata
            # is read at the well-known URLs only, never by calling it.
            probe=openai,
        )

    def _api_key(self, stored: StoredVendorAgent) -> str | None:
        credential = stored.config.credential
        if credential.type == "sealed" and stored.api_key_sealed is not None:
            try:
                return open_secret(stored.api_key_sealed, self._sealing_secret, SEAL_PURPOSE)
            except KeySealError as exc:
                raise CredentialUnavailable(str(exc)) from None
        if credential.type == "settings_secret" and credential.name is not None:
            secret = self._secrets.get(credential.name)
            if secret is None:
                raise CredentialUnavailable(
                    f"the gateway has no secret named {credential.name!r} "
                    f"(SWITCHBOARD_SECRETS__{credential.name.upper()})"
                )
            return secret.get_secret_value()
        return None


# What a gateway-run agent's failures mean to the delegation core
# (`gateway.delegation.delegate`): the task fails with the adapter's words.


def classify_adapter_failure(exc: BaseException) -> Failure:
    """A timeout or a 5xx is transient; no connection, unreached; the rest is
    the upstream's answer (`gateway.delegation.retry.Failure`)."""
    if isinstance(exc, UpstreamTimeout):
        return Failure.TRANSIENT
    if isinstance(exc, AdapterUnavailable):
        return Failure.UNREACHED
    if isinstance(exc, UpstreamFailed) and (exc.status or 0) >= 500:
        return Failure.TRANSIENT
    return classify(exc) if not isinstance(exc, AdapterError) else Failure.ANSWERED


def explain_adapter_failure(exc: BaseException) -> Explained:
    if isinstance(exc, BreakerOpen):
        return Explained(AdapterUnavailable(f"agent {exc}; not called"), "breaker_open", str(exc))
    if isinstance(exc, AdapterError):
        return Explained(exc, "upstream_error", str(exc))
    return Explained(AdapterError(f"{type(exc).__name__}: {exc}"), "upstream_error", str(exc))


def overran(agent_id: str) -> Explained:
    error = UpstreamTimeout(f"the stream from agent {agent_id} passed its time limit")
    return Explained(error, "upstream_error", str(error))
