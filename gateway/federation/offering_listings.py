"""What the federated MCP servers list besides tools -- resources, resource
templates, prompts -- read from the live sessions with the gateway's own
credential, one listing for every caller, each item under the one name it
has here (`gateway.federation.offerings`, whose docstring gives the rules)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

import mcp_types as types
from mcp.client.session import ClientSession

from adapters.core_check import outside_a_call
from adapters.mcp import McpUpstream, UpstreamError, UpstreamUnavailable
from gateway.federation.credentials import UpstreamCredentials
from gateway.federation.federation import McpFederation
from gateway.federation.offered import (
    OfferedPrompt,
    OfferedResource,
    OfferedTemplate,
)
from registry.mcp_offerings import (
    app_resource_meta,
    prompt_names,
    screen_prompt,
    uri_names,
)
from registry.mcp_rows import McpServerConfig
from registry.mcp_tool_writes import NAME_FLAG
from registry.mcp_tools import ToolFlag

LISTING_SECONDS = 1.0  # how long one server's listing is reused
_MAX_PAGES = 100
Kind = Literal["resources", "templates", "prompts"]


@dataclass(frozen=True)
class Source:
    """A connected server, with what a call to it needs."""

    config: McpServerConfig
    upstream: McpUpstream
    credentials: UpstreamCredentials

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(frozen=True)
class Catalog:
    resources: list[OfferedResource]
    templates: list[OfferedTemplate]
    prompts: list[OfferedPrompt]


class OfferingListings:
    """The federated servers' listings, each kept `LISTING_SECONDS`."""

    def __init__(self, federation: McpFederation) -> None:
        self.federation = federation
        self._listings: dict[tuple[str, Kind], tuple[float, list[Any]]] = {}

    def forget(self, server_id: str, kind: Kind) -> None:
        """Drop a kept listing: the server said it changed."""
        self._listings.pop((server_id, kind), None)

    def sources(self, configs: list[McpServerConfig]) -> list[Source]:
        """The connected servers whose offerings callers may be shown."""
        sources = []
        for config in configs:  # registration order
            if config.credential.get("type") in ("user_oauth", "idp_token_exchange"):
                # Not offered yet: listing them needs a user's own credential,
                # and one user's listing is not another's (docs/connections.md).
                continue
            live = self.federation.upstreams.get(config.id)
            if live is not None and live[0].ready:
                sources.append(Source(config, live[0], live[1]))
        return sources

    async def catalog(self, kinds: set[Kind]) -> Catalog:
        """Every server's offerings of ``kinds``, each under the one name it has here."""
        if kinds & {"resources", "templates"}:
            # A plain URI is kept only where no template or resource of
            # another server could be it: both are named together, always.
            kinds = kinds | {"resources", "templates"}
        sources = self.sources(await self.federation.server_configs())
        listed = await asyncio.gather(
            *(self._listing(source, kind) for source in sources for kind in sorted(kinds))
        )
        by_source = iter(listed)
        items: list[tuple[Source, Any]] = [
            (source, item) for source in sources for _ in sorted(kinds) for item in next(by_source)
        ]
        # Every name at once (`registry.mcp_offerings`): a plain name two
        # servers claim is neither's, whichever is listed first.
        found = [(s, i) for s, i in items if isinstance(i, types.Resource)]
        found_t = [(s, i) for s, i in items if isinstance(i, types.ResourceTemplate)]
        found_p = [(s, i) for s, i in items if isinstance(i, types.Prompt)]
        uris, template_uris = uri_names(
            [(s.id, i.uri, s.config.prefix) for s, i in found],
            [(s.id, i.uri_template, s.config.prefix) for s, i in found_t],
        )
        resources = [
            OfferedResource(
                uri,
                s.id,
                i.uri,
                i.model_copy(update={"uri": uri, "meta": app_resource_meta(i.meta)}),
            )
            for (s, i), uri in zip(found, uris, strict=True)
        ]
        templates = [
            OfferedTemplate(uri, s.id, i.uri_template, i.model_copy(update={"uri_template": uri}))
            for (s, i), uri in zip(found_t, template_uris, strict=True)
        ]
        names = prompt_names([(s.id, i.name, s.config.prefix) for s, i in found_p])
        prompts = []
        for (source, item), (name, refusal) in zip(found_p, names, strict=True):
            flags = screen_prompt(item.model_dump(mode="json", by_alias=True))
            if refusal is not None:  # a name of a reserved form: withheld, with the reason
                flags.append(ToolFlag(NAME_FLAG, "name", f"kept out: {refusal.reason}"))
            prompts.append(
                OfferedPrompt(
                    name, source.id, item.name, item.model_copy(update={"name": name}), tuple(flags)
                )
            )
        return Catalog(resources, templates, prompts)

    async def _listing(self, source: Source, kind: Kind) -> list[Any]:
        """One server's listing of ``kind`` (all pages), or [] when it offers none."""
        capabilities = source.upstream.capabilities
        offers = capabilities is not None and (
            capabilities.prompts is not None
            if kind == "prompts"
            else capabilities.resources is not None
        )
        if not offers:
            return []
        key = (source.id, kind)
        cached = self._listings.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            # Not a caller's call: the gateway's own credential, one listing
            # for every caller, each shown what the decision lets it see.
            with outside_a_call("listing an upstream's offerings for every caller"):
                items = await self._list_all(source.upstream, kind)
        except (UpstreamUnavailable, UpstreamError):
            return []  # a server that fails to list offers nothing now
        self._listings[key] = (now + LISTING_SECONDS, items)
        return items

    @staticmethod
    async def _list_all(upstream: McpUpstream, kind: Kind) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor)

            async def page(
                session: ClientSession, params: types.PaginatedRequestParams = params
            ) -> tuple[list[Any], str | None]:
                if kind == "resources":
                    got = await session.list_resources(params=params)
                    return list(got.resources), got.next_cursor
                if kind == "templates":
                    got_t = await session.list_resource_templates(params=params)
                    return list(got_t.resource_templates), got_t.next_cursor
                got_p = await session.list_prompts(params=params)
                return list(got_p.prompts), got_p.next_cursor

            batch, cursor = await upstream.request(page, credential=None)
            items.extend(batch)
            if cursor is None:
                break
        return items
