"""Registering and refreshing agents: fetch -> validate -> check signatures -> store.

The order matters for "nothing half-written": everything that can fail on
the card (fetching, parsing, signatures) happens before the single store
transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from registry.agent_health import HealthTarget
from registry.cards import CardInvalid, FieldError, ParsedCard, parse_card
from registry.contracts import check_contracts
from registry.fetch import FetchFailed, SafeFetcher
from registry.health import HealthChecker
from registry.models import AgentRecord, AgentRegistration
from registry.signatures import SignatureCheck, SignatureStatus, check_card_signatures
from registry.store import AgentConflict, NewAgent, SqlAgentStore
from registry.vendor_cards import gateway_run_kind

WELL_KNOWN_CARD_PATH = "/.well-known/agent-card.json"  # A2A 1.0 / 0.3
LEGACY_CARD_PATH = "/.well-known/agent.json"  # A2A 0.2
MAX_SLUG_ATTEMPTS = 50


class SignatureRefused(Exception):
    def __init__(self, check: SignatureCheck) -> None:
        super().__init__(check.detail)
        self.check = check


@dataclass(frozen=True)
class FetchedCard:
    url: str
    parsed: ParsedCard


class RegistryService:
    def __init__(
        self, store: SqlAgentStore, fetcher: SafeFetcher, health: HealthChecker | None = None
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        # Checks an agent registered by URL once as it is registered: its
        # health is known from the start, not only at the checker's next
        # round (an hour with a long `health_check_interval_seconds`).
        self.health = health
        # Called after a registration, refresh or removal on this replica (the
        # MCP front end tells its clients their tool list changed).
        self.listeners: list[Callable[[], None]] = []

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    async def register(self, request: AgentRegistration) -> AgentRecord:
        if request.card_url is not None:
            fetched = await self.fetch_card(request.card_url)
            card_url: str | None = fetched.url
            parsed = fetched.parsed
        else:
            card_url = None
            parsed = parse_card(request.card)
        _not_the_gateways(parsed)
        if request.skill_contracts:
            check_contracts(request.skill_contracts, (s.id for s in parsed.card.skills))
        signature = await self._signature(parsed, request.signing_keys, card_url)
        agent_id = request.id or await self._free_slug(parsed.name)
        record = await self.store.create(
            NewAgent(
                id=agent_id,
                resource=request.resource or default_resource(parsed, agent_id),
                card_url=card_url,
                parsed=parsed,
                signature=signature,
                pinned_keys=request.signing_keys,
                timeout_seconds=request.timeout_seconds,
                skill_contracts=request.skill_contracts,
            )
        )
        if self.health is None or card_url is None:
            # An inline card's interface waits for the checker's round: its
            # URL was never reached at registration, and may not be yet.
            return record
        await self.health.check(HealthTarget(agent_id, card_url, None))
        return await self.store.get(agent_id) or record

    async def refresh(
        self, agent_id: str, inline_card: Mapping[str, Any] | None
    ) -> tuple[AgentRecord, bool]:
        card_url, pinned = await self.store.registration(agent_id)
        if gateway_run_kind(await self.store.card(agent_id) or {}) is not None:
            raise CardInvalid(
                [FieldError("card", "the gateway wrote this agent's card; register it again")]
            )
        if card_url is not None:
            if inline_card is not None:
                raise CardInvalid(
                    [FieldError("card", "this agent was registered by URL; its card is re-fetched")]
                )
            parsed = (await self.fetch_card(card_url)).parsed
        else:
            if inline_card is None:
                raise CardInvalid(
                    [FieldError("card", "this agent was registered inline; send the new card")]
                )
            parsed = parse_card(dict(inline_card))
        _not_the_gateways(parsed)
        signature = await self._signature(parsed, pinned, card_url)
        return await self.store.add_revision(agent_id, parsed, signature)

    async def fetch_card(self, url: str) -> FetchedCard:
        """Fetch a card from a full card URL, or from a base URL's well-known paths."""
        last_error: FetchFailed | None = None
        for candidate in card_url_candidates(url):
            document = await self.fetcher.get(candidate)
            if document.status == 200:
                return FetchedCard(url=candidate, parsed=parse_card(document.json()))
            last_error = FetchFailed(f"{candidate} answered HTTP {document.status}")
            if document.status != 404:
                break
        assert last_error is not None
        raise last_error

    async def _signature(
        self, parsed: ParsedCard, pinned: Mapping[str, Any] | None, card_url: str | None
    ) -> SignatureCheck:
        check = await check_card_signatures(
            parsed.original,
            parsed.card,
            pinned_keys=pinned,
            card_url=card_url,
            fetcher=self.fetcher,
        )
        if check.status is SignatureStatus.INVALID:
            raise SignatureRefused(check)
        return check

    async def _free_slug(self, name: str) -> str:
        base = slugify(name)
        found = await free_slug(base, self.store.id_taken)
        if found is None:
            raise AgentConflict(base)
        return found


def default_resource(parsed: ParsedCard, agent_id: str) -> str:
    """The agent's own URL: what an agent verifying `aud` most likely expects."""
    for interface in parsed.card.supported_interfaces:
        if interface.url:
            return str(interface.url)
    return f"urn:switchboard:agent:{agent_id}"


def card_url_candidates(url: str) -> list[str]:
    """A URL with a path is the card itself; a bare origin gets the well-known paths."""
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        return [url]
    return [
        urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        for path in (WELL_KNOWN_CARD_PATH, LEGACY_CARD_PATH)
    ]


async def free_slug(base: str, taken: Callable[[str], Awaitable[bool]]) -> str | None:
    """``base``, or ``base-2``, ``base-3``, ... : the first id not ``taken``
    (None after `MAX_SLUG_ATTEMPTS` tries). Agents and MCP servers alike."""
    for n in range(1, MAX_SLUG_ATTEMPTS + 1):
        candidate = base if n == 1 else f"{base[:60]}-{n}"
        if not await taken(candidate):
            return candidate
    return None


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or "agent"


def _not_the_gateways(parsed: ParsedCard) -> None:
    """A registered card may not carry the gateway-run mark: it would have the
    gateway run the agent itself -- as a vendor agent or a flow -- under a
    configuration it never had (`registry.vendor_cards`)."""
    if gateway_run_kind(parsed.normalized) is not None:
        raise CardInvalid(
            [
                FieldError(
                    "card.capabilities.extensions",
                    "the gateway-run extension is the gateway's own mark, not a card's",
                )
            ]
        )
