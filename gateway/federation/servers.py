"""The MCP federation's registry side (`gateway/api/mcp_servers.py`): a server
registered (checked, probed once, stored with its tools), its tools listed
again, one approved, the server removed -- each change invalidating the
federation's copies (`McpFederation.invalidate`) -- and what a user is shown
of the servers, by the very decision `tools/call` runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from adapters.mcp import UpstreamUnavailable
from gateway.delegation.pipeline import Caller
from gateway.federation.federated_tools import (
    FederatedTool,
    audit_kept_out,
    audit_name_refusal,
    config_of,
    view_of,
)
from gateway.federation.federation import FederationSettings, McpFederation

# `probe` lists an MCP server's tools, or reads a REST API's from its document.
from gateway.federation.openapi_source import load_api, probe
from gateway.federation.probe import record_first_health
from gateway.federation.registration import check_registration, new_server
from policies.policy import Target
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.fetch import SafeFetcher
from registry.mcp_models import (
    McpServerRecord,
    McpServerView,
    McpToolRecord,
    RefreshResult,
)
from registry.mcp_names import SEPARATOR, NameConflict, reserved_id
from registry.mcp_registration import McpServerRegistration
from registry.mcp_store import (
    McpServerConflict,
    McpServerNotFound,
)
from registry.service import free_slug, slugify


class McpServers:
    """The registry's API of the federation, for `gateway/api/mcp_servers.py`."""

    def __init__(
        self, federation: McpFederation, fetcher: SafeFetcher, settings: FederationSettings
    ) -> None:
        self._mcp = federation
        self._fetcher = fetcher
        self._settings = settings

    async def register(
        self, registration: McpServerRegistration, principal: Principal
    ) -> McpServerRecord:
        """Check, probe (list the tools once), then store server and tools together."""
        api = None  # a REST API's document, read and checked before anything is stored
        if registration.openapi is not None:
            api = await load_api(registration, self._fetcher)
            registration = registration.model_copy(update={"url": api.base_url})
        admin = principal.has_scope(ADMIN_SCOPE)
        settings = self._settings
        await check_registration(
            registration, admin, self._fetcher, settings.stdio_commands, settings.users_own
        )
        server_id = registration.id or await self._free_slug(registration.name)
        try:  # one name on /mcp, one target: a refusal is audited
            if (refusal := reserved_id(server_id)) is not None:
                raise refusal.error(f"MCP server {server_id}")
            if registration.id is not None and await self._mcp.store.id_taken(server_id):
                raise McpServerConflict(server_id)
            new = new_server(
                registration, server_id, principal, admin, api, settings.sealing_secret
            )
            config = config_of(new)
            credentials = self._mcp.upstreams.credentials(config)
            probed = await probe(
                config,
                credentials,
                self._mcp.upstreams.http,
                deadline=self._settings.connect_timeout_seconds,
                detect_legacy=registration.detect_legacy,
            )
            new = replace(new, transport=probed.transport or new.transport)  # remembered
            await self._mcp.store.create(
                new, probed.tools, auto_approve=self._settings.auto_approve_new_tools and admin
            )
        except (NameConflict, McpServerConflict) as refused:
            await audit_name_refusal(self._mcp.delegations, principal, server_id, str(refused))
            raise
        await record_first_health(self._mcp.store, server_id, probed)
        await self._mcp.changed(server_id)
        await self._mcp.upstreams.wake_and_wait()
        live = self._mcp.upstreams.tools_of(server_id)
        if live is not None:  # so the first call need not wait for the connection
            await live[0].wait_ready(self._settings.connect_timeout_seconds)
        fresh = await self._mcp.store.get(server_id)
        assert fresh is not None
        return fresh

    async def refresh(self, server_id: str, principal: Principal | None = None) -> RefreshResult:
        """List the server's tools now; changed definitions are quarantined, new
        ones that cannot have their names kept out (`registry.mcp_sync`)."""
        if await self._mcp.store.config(server_id) is None:
            raise McpServerNotFound(server_id)
        live = self._mcp.upstreams.tools_of(server_id)
        if live is None:
            await self._mcp.upstreams.wake_and_wait()
            live = self._mcp.upstreams.tools_of(server_id)
        if live is None or not live[0].ready:
            reason = live[0].last_error if live else None
            raise UpstreamUnavailable(
                f"MCP server {server_id} is not connected" + (f": {reason}" if reason else "")
            )
        tools = await live[0].list_tools()
        result = await self._mcp.store.sync_tools(server_id, tools, auto_approve=False)
        await self._mcp.changed(server_id)
        await audit_kept_out(self._mcp.delegations, server_id, result.kept_out, principal)
        record = await self._mcp.store.get(server_id)
        if record is None:
            raise McpServerNotFound(server_id)
        return RefreshResult(
            added=result.added,
            changed=result.changed,
            removed=result.removed,
            kept_out=result.kept_out,
            server=record,
        )

    async def approve(
        self, server_id: str, tool_name: str, digest: str | None, principal: Principal
    ) -> McpToolRecord:
        try:
            approved = await self._mcp.store.approve(
                server_id, tool_name, digest, principal.subject
            )
        except NameConflict as refused:
            await audit_name_refusal(self._mcp.delegations, principal, server_id, str(refused))
            raise
        await self._mcp.changed(server_id)
        return approved

    async def remove(self, server_id: str) -> bool:
        removed = await self._mcp.store.delete(server_id)
        if removed:
            await self._mcp.changed(server_id)
            await self._mcp.upstreams.wake_and_wait()
        return removed

    async def shown(
        self, principal: Principal, records: Sequence[McpServerRecord]
    ) -> list[McpServerRecord | McpServerView]:
        """What the registry API shows ``principal`` of ``records``: an admin
        every record whole; anyone else each server they may use (`visible`),
        as a view with only the tools their `tools/list` offers them --
        `tools(caller)`, the very decision `call_tool` runs."""
        if principal.has_scope(ADMIN_SCOPE):
            return list(records)
        offered: dict[str, list[FederatedTool]] = {}
        for tool in await self._mcp.tools(Caller.user(principal)):
            offered.setdefault(tool.server_id, []).append(tool)
        return [
            view_of(record, offered.get(record.id, []))
            for record in records
            if self.visible(principal, record)
        ]

    def visible(self, principal: Principal, record: McpServerRecord) -> bool:
        """Whether a user may use any tool of the server: what listings show."""
        if principal.has_scope(ADMIN_SCOPE):
            return True
        caller = Caller.user(principal)
        target = Target(record.id)
        return (
            any(
                self._mcp.delegations.decide(caller, target, tool.name, "tool").allowed
                for tool in record.tools
            )
            or self._mcp.delegations.decide(caller, target, None, "tool").allowed
        )

    async def _free_slug(self, name: str) -> str:
        base = slugify(name).replace(SEPARATOR, "-")
        if (found := await free_slug(base, self._mcp.store.id_taken)) is None:
            raise McpServerConflict(base)
        return found
