"""The live connections to every registered MCP server, owned by one lifespan task.

`McpUpstreams.reconciler` (a periodic job) runs in the app's lifespan. It reads the server
list from the database (every ``reconcile_seconds``, or at once after a
registration or removal on this replica), starts an `adapters.mcp.McpUpstream`
task for each new server, restarts one whose registration changed and stops
the ones removed. Every connection task is created here, never in a request
handler, so each SDK client lives and dies in its own task.

What the connections learn goes to the store: each listing is applied with
`SqlMcpStore.sync_tools` (a changed definition is quarantined there) -- the
listing the connection applied last, listed again while the server's rows
still hold it, only marks when it was listed (`SqlMcpStore.listed_again`)
-- and each health transition is recorded. Whatever moves a server's rows
as this replica sees them -- a listing that changed its tools, a server
registered, edited or removed (here or by another replica, found by a
pass) -- is told to ``on_change`` with the server's id: the catalog reloads
that server before its next answer (`gateway.federation.catalog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx2
import mcp_types as types

from adapters.mcp import Connected, McpUpstream, ToolList, UpstreamSpec, UpstreamTimings
from adapters.mcp_client import OnHealth, OnTools
from adapters.mcp_http import Credential, NoUpstreamAuth, UpstreamAuth, checked_client
from adapters.mcp_passthrough import McpPassThrough
from adapters.openapi import OpenApiUpstream
from gateway.connections.service import Connections
from gateway.federation.credentials import UpstreamCredentials, build_credentials
from gateway.storage.outages import outage_of
from gateway.storage.periodic import Periodic
from policies.delegation import DelegatedTokenMinter
from registry.mcp_rows import McpServerConfig
from registry.mcp_store import McpServerNotFound, SqlMcpStore
from registry.models import HealthStatus
from registry.ssrf import AddressPolicy

logger = logging.getLogger(__name__)
security = logging.getLogger("switchboard.security")
_STOP_ATTEMPTS = 5
ResourceUpdated = Callable[[str, types.ResourceUpdatedNotification], None]
KeptOut = Callable[[str, Mapping[str, str]], Awaitable[None]]
_STOP_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class UpstreamLimits:
    connect_timeout_seconds: float
    call_timeout_seconds: float
    max_response_bytes: int


def spec_of(config: McpServerConfig) -> UpstreamSpec:
    if config.transport == "stdio":
        return UpstreamSpec(config.id, "stdio", command=config.command, args=config.args)
    return UpstreamSpec(config.id, "sse" if config.transport == "sse" else "http", url=config.url)


@dataclass
class _Running:
    version: str
    upstream: McpUpstream | OpenApiUpstream
    credentials: UpstreamCredentials
    task: asyncio.Task[None]


class McpUpstreams:
    def __init__(
        self,
        store: SqlMcpStore,
        policy: AddressPolicy,
        minter: DelegatedTokenMinter,
        *,
        secret: str | None,
        limits: UpstreamLimits,
        timings: UpstreamTimings,
        reconcile_seconds: float,
        on_change: Callable[[str], None],
        passthrough: bool = True,
    ) -> None:
        """``passthrough``: `tools/call` on 2026-07-28 HTTP servers skips the
        SDK's client (`adapters.mcp_passthrough`)."""
        self._store = store
        self._policy = policy
        self._minter = minter
        self._secret = secret
        self.limits = limits
        self._timings = timings
        self._reconcile_seconds = reconcile_seconds
        self._on_change = on_change
        self._running: dict[str, _Running] = {}
        # Each server's version as the last pass read it (None: no pass yet).
        self._seen: dict[str, str] | None = None
        self._reconciled = asyncio.Event()
        # Connected accounts, for `user_oauth` servers (set at start-up).
        self.connections: Connections | None = None
        # A server's first listing after registration is approved as the
        # registration's own would have been (a `user_oauth` server is listed
        # only once its registrant connects).
        self.auto_approve_first_listing = False
        self._trusted: dict[str, bool] = {}
        # Reconciling every `reconcile_seconds`, or at once when woken (the
        # app's jobs run it: `gateway.storage.periodic`).
        self.reconciler = Periodic("mcp-upstreams", reconcile_seconds, self._reconcile_pass)
        # Told when a server says one of its resources changed (the MCP front
        # end relays it to the sessions that subscribed).
        self.on_resource_updated: ResourceUpdated | None = None
        # Told when a server says its tools (once listed again) or prompts
        # changed: (server id, "tools" or "prompts"); the MCP front end tells
        # its clients.
        self.on_list_changed: Callable[[str, str], None] | None = None
        # Told of new tools a listing brought that were kept out of their
        # names (`registry.mcp_sync`): the federation audits them.
        self.on_kept_out: KeptOut | None = None
        # Token requests (OAuth client credentials) share one checked client,
        # with no per-call credential on it.
        self.token_http = self.http(NoUpstreamAuth())
        self.passthrough = (
            McpPassThrough(
                policy,
                connect_timeout_seconds=limits.connect_timeout_seconds,
                max_response_bytes=limits.max_response_bytes,
            )
            if passthrough
            else None
        )

    def http(self, auth: UpstreamAuth | None) -> httpx2.AsyncClient:
        return checked_client(
            self._policy,
            auth or UpstreamAuth(),
            connect_timeout_seconds=self.limits.connect_timeout_seconds,
            read_timeout_seconds=self.limits.call_timeout_seconds,
            max_response_bytes=self.limits.max_response_bytes,
        )

    def credentials(self, config: McpServerConfig) -> UpstreamCredentials:
        return build_credentials(
            config,
            secret=self._secret,
            minter=self._minter,
            token_http=self.token_http,
            connections=self.connections,
        )

    def restart(self, server_id: str) -> None:
        """Connect to the server again now (its registrant just connected an
        account: the tools can be listed), instead of at the next backoff."""
        running = self._running.get(server_id)
        if running is not None and not running.upstream.ready:
            running.version = ""  # the next pass starts it afresh
            self.reconciler.wake()

    def get(self, server_id: str) -> tuple[McpUpstream, UpstreamCredentials] | None:
        """An MCP server's session (None for a REST API: it has no resources,
        prompts or completions to offer)."""
        running = self._running.get(server_id)
        if running is None or not isinstance(running.upstream, McpUpstream):
            return None
        return running.upstream, running.credentials

    def tools_of(
        self, server_id: str
    ) -> tuple[McpUpstream | OpenApiUpstream, UpstreamCredentials] | None:
        """Whatever serves a server's tools: an MCP session or a REST API."""
        running = self._running.get(server_id)
        return (running.upstream, running.credentials) if running else None

    async def wake_and_wait(self, wait_seconds: float = 5.0) -> None:
        """Reconcile now (after a registration or removal here) and wait for it."""
        self._reconciled.clear()
        self.reconciler.wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self._reconciled.wait()

    async def _reconcile_pass(self) -> None:
        try:
            await self.reconcile()
        finally:  # whoever waits for a pass hears of it, failed or not
            self._reconciled.set()

    async def reconcile(self) -> None:
        configs = {c.id: c for c in await self._store.configs()}
        self._tell_moved({server_id: config.version for server_id, config in configs.items()})
        for server_id in [s for s in self._running if s not in configs]:
            await self._stop(server_id)
        for server_id, config in configs.items():
            running = self._running.get(server_id)
            if running is not None and running.version == config.version:
                continue
            if running is not None:
                await self._stop(server_id)
            self._start(config)

    def _tell_moved(self, seen: dict[str, str]) -> None:
        """Each server registered, edited or removed since the last pass --
        here or by another replica -- told (`on_change`) before its
        connection is started or stopped: the catalog reloads it before its
        next answer (`gateway.federation.catalog`), where its own look for
        other replicas' changes would serve the old rows once more after an
        idle spell. The first pass tells nothing: whatever read the store
        before it read it as it was."""
        before, self._seen = self._seen, seen
        if before is None:
            return
        for server_id in sorted(before.keys() | seen.keys()):
            if before.get(server_id) != seen.get(server_id):
                self._on_change(server_id)

    def _start(self, config: McpServerConfig) -> None:
        try:
            credentials = self.credentials(config)
        except Exception as exc:  # a credential sealed with another secret
            logger.error("MCP server %s: its credential cannot be used: %s", config.id, exc)
            return
        server_id = config.id
        on_tools = self._listings_of(server_id)

        async def on_health(ok: bool, detail: str | None, connected: Connected | None) -> None:
            async with _named_outage():
                await self._store.record_health(
                    server_id,
                    HealthStatus.HEALTHY if ok else HealthStatus.UNHEALTHY,
                    detail,
                    server_info=connected.server_info if connected else None,
                    protocol_version=connected.protocol_version if connected else None,
                )

        async def default_credential() -> Credential | None:
            async with _named_outage():
                return await credentials.default()

        if config.openapi is not None:  # a REST API: no MCP session to keep
            self._start_api(config, credentials, on_tools, on_health)
            return
        # Only a `user_oauth` server is listed after registration by design.
        self._trusted[server_id] = (
            config.trusted_registrant and config.credential.get("type") == "user_oauth"
        )
        upstream = McpUpstream(
            spec_of(config),
            self.http,
            default_credential=default_credential,
            on_tools=on_tools,
            on_health=on_health,
            timings=self._timings,
            per_caller_credentials=credentials.per_caller,
            passthrough=self.passthrough,
        )
        upstream.notice_listeners.append(lambda notice: self._resource_updated(server_id, notice))
        upstream.list_listeners.append(lambda kind: self._list_changed(server_id, kind))
        task = asyncio.create_task(upstream.run(), name=f"mcp-upstream-{server_id}")
        self._running[server_id] = _Running(config.version, upstream, credentials, task)

    def _listings_of(self, server_id: str) -> OnTools:
        """What one connection does with each listing it gets: applies it
        (`_synced`), or -- the listing it applied last, while the server's
        rows still hold it -- only marks when it was listed."""
        # The last listing this connection applied, and its digest.
        applied: tuple[ToolList, str] | None = None

        async def on_tools(tools: ToolList) -> None:
            nonlocal applied
            async with _named_outage():
                # A probe's usual answer: reading and comparing every stored
                # row again would find nothing to do -- unless another
                # listing was applied since (an admin's refresh).
                if (
                    applied is not None
                    and applied[0] == tools
                    and await self._store.listed_again(server_id, applied[1])
                ):
                    return
                applied = None
                if (listing := await self._synced(server_id, tools)) is not None:
                    applied = (tools, listing)

        return on_tools

    def _start_api(
        self,
        config: McpServerConfig,
        credentials: UpstreamCredentials,
        on_tools: OnTools,
        on_health: OnHealth,
    ) -> None:
        assert config.openapi is not None
        assert config.url is not None
        self._trusted[config.id] = False
        api = OpenApiUpstream(
            config.id,
            config.url,
            config.openapi,
            self.http,
            on_tools=on_tools,
            on_health=on_health,
            users_own=credentials.users_own,
        )
        task = asyncio.create_task(api.run(), name=f"openapi-upstream-{config.id}")
        self._running[config.id] = _Running(config.version, api, credentials, task)

    def _resource_updated(self, server_id: str, notice: types.ResourceUpdatedNotification) -> None:
        if self.on_resource_updated is not None:
            self.on_resource_updated(server_id, notice)

    def _list_changed(self, server_id: str, kind: str) -> None:
        if self.on_list_changed is not None:
            self.on_list_changed(server_id, kind)

    async def _synced(self, server_id: str, tools: ToolList) -> str | None:
        """Apply a listing; its digest (None: the server is gone)."""
        try:
            # Tools first seen after registration are never approved on sight.
            result = await self._store.sync_tools(
                server_id,
                tools,
                auto_approve=False,
                auto_approve_if_first=self.auto_approve_first_listing
                and self._trusted.get(server_id, False),
            )
        except McpServerNotFound:
            return None  # removed meanwhile; the reconciler stops this connection
        if result.added or result.changed or result.removed:
            logger.warning(
                "MCP server %s changed its tools: added %s, changed %s, removed %s",
                server_id,
                result.added,
                result.changed,
                result.removed,
            )
            if result.changed:
                security.warning(
                    "MCP server %s: tools changed, quarantined until an admin re-approves: %s",
                    server_id,
                    result.changed,
                )
        if result.moved:
            self._on_change(server_id)
        if result.kept_out and self.on_kept_out is not None:
            await self.on_kept_out(server_id, result.kept_out)
        return result.listing

    async def _stop(self, server_id: str) -> None:
        running = self._running.pop(server_id, None)
        if running is None:
            return
        running.upstream.stop()
        # Cancel until it ends: a cancellation that lands while the SDK is
        # tearing down its own task groups can be absorbed there. Bounded, so
        # shutdown never hangs on one server.
        for _ in range(_STOP_ATTEMPTS):
            running.task.cancel()
            done, _ = await asyncio.wait({running.task}, timeout=_STOP_WAIT_SECONDS)
            if done:
                break
        else:
            logger.error("MCP server %s: its connection task did not stop", server_id)
        if running.task.done() and not running.task.cancelled():
            with contextlib.suppress(BaseException):
                running.task.result()

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self._stop(server_id) for server_id in list(self._running)))

    async def aclose(self) -> None:
        await self._stop_all()
        await self.token_http.aclose()
        if self.passthrough is not None:
            await self.passthrough.aclose()


@contextlib.asynccontextmanager
async def _named_outage() -> AsyncIterator[None]:
    """A dependency outage in the gateway's own part of an upstream's
    connection (its credential, its health or tools recorded) raised as
    `DependencyUnavailable`: the adapter keeps it as the cause of its
    `OwnFailure`, and a caller is told the database is down -- never the
    bare `ConnectionRefusedError` the database driver raised, read as the
    upstream's."""
    try:
        yield
    except Exception as exc:
        outage = outage_of(exc)
        if outage is None:
            raise
        raise outage from exc
