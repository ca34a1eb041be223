"""Registration of a REST API by its OpenAPI document: the document read (fetched
under the SSRF rules, or given), checked and turned into tools
(`registry.openapi_tools`) before anything is stored -- a refusal
(`OpenApiRefused`, 422) stores nothing -- and the API's base URL chosen.

What is kept (`McpServerConfig.openapi`): the tools, their bindings and the
document's title and version. The registration's ``url`` is the API's base
URL (where calls go, the SSRF-checked target, the default token audience and,
for ``user_oauth``, where its users connect); without one, the document's
first server (OpenAPI 3.1 §4.8.5; ``/`` when it names none) resolved against
the document's URL. A server with variables, or a relative one in a document
given inline, needs the base URL given.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2
import yaml

from adapters.mcp_client import Connected
from adapters.mcp_http import UpstreamAuth
from adapters.openapi import OPENAPI_PROTOCOL
from gateway.federation.credentials import UpstreamCredentials
from gateway.federation.probe import Probed
from gateway.federation.probe import probe as probe_mcp
from gateway.http.json_body import JsonRefused, NotJson, read_json
from registry.fetch import FetchFailed, FetchLimits, SafeFetcher
from registry.mcp_registration import McpServerRegistration
from registry.mcp_rows import McpServerConfig
from registry.openapi_models import OpenApiSource
from registry.openapi_refs import OpenApiRefused
from registry.openapi_tools import MAX_DOCUMENT_BYTES, OpenApiTools, tools_of

ACCEPT = "application/json, application/yaml;q=0.9, text/yaml;q=0.8, */*;q=0.1"
_VARIABLE = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class LoadedApi:
    base_url: str
    source: str  # the document's URL, or "inline"
    tools: OpenApiTools

    def stored(self) -> dict[str, Any]:
        """What `McpServerConfig.openapi` keeps."""
        return {
            "source": self.source,
            "title": self.tools.title,
            "version": self.tools.version,
            "tools": self.tools.tools,
            "bindings": self.tools.bindings,
        }


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: an alias can multiply a small
    document far past any byte bound ("billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise OpenApiRefused("YAML aliases are not accepted in an OpenAPI document")
        return super().compose_node(parent, index)


def parse_document(body: bytes) -> Any:
    """A document's bytes as JSON, or else YAML (OpenAPI 3.1 §4.3: both are)."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise OpenApiRefused(f"the document is over {MAX_DOCUMENT_BYTES} bytes")
    try:
        try:
            return read_json(body)  # the one JSON reader: depth, numbers JSON has
        except NotJson:
            pass
        except JsonRefused as exc:
            raise OpenApiRefused(f"the document cannot be read: {exc}") from None
        try:
            return yaml.load(body, Loader=_NoAliases)  # noqa: S506 -- a SafeLoader
        except yaml.YAMLError as exc:
            raise OpenApiRefused(f"the document is neither JSON nor YAML: {exc}") from None
    except RecursionError:  # both parsers recurse per level of nesting
        raise OpenApiRefused("the document nests too deeply to be read") from None


async def _fetched(url: str, fetcher: SafeFetcher) -> tuple[bytes, str]:
    own = SafeFetcher(fetcher.policy, FetchLimits(max_bytes=MAX_DOCUMENT_BYTES))
    try:
        fetched = await own.get(url, accept=ACCEPT)
    except FetchFailed as exc:  # too large, unreachable: the registration's refusal (422)
        raise OpenApiRefused(f"the document cannot be read: {exc}") from None
    finally:
        await own.aclose()
    if fetched.status != 200:
        raise OpenApiRefused(f"{url} answered HTTP {fetched.status}, not the document")
    return fetched.body, fetched.url


def base_url_of(tools: OpenApiTools, given: str | None, document_url: str | None) -> str:
    if given is not None:
        return given
    # No servers: "a Server Object with a url value of /" (OpenAPI 3.1 §4.8.1).
    first = tools.servers[0] if tools.servers else "/"
    base = urljoin(document_url, first) if document_url else first
    if _VARIABLE.search(base):
        raise OpenApiRefused(
            f"the document's server {first!r} has variables: give the API's base URL (url)"
        )
    if urlsplit(base).scheme not in ("http", "https"):
        raise OpenApiRefused(
            f"the document's server {first!r} is not an absolute http(s) URL: "
            "give the API's base URL (url)"
        )
    return base


async def load_api(registration: McpServerRegistration, fetcher: SafeFetcher) -> LoadedApi:
    """The registration's API, read and checked (`OpenApiRefused`, `FetchError`)."""
    source: OpenApiSource | None = registration.openapi
    assert source is not None
    if source.url is not None:
        body, where = await _fetched(source.url, fetcher)
        # Parsed off the loop: a large YAML document is seconds of CPU.
        document = await asyncio.to_thread(parse_document, body)
    else:
        document, where = source.document, None
    tools = await asyncio.to_thread(
        tools_of, document, operations=source.operations, tag=source.tag
    )
    base = base_url_of(tools, registration.url, where)
    return LoadedApi(base_url=base, source=where or "inline", tools=tools)


async def probe(
    config: McpServerConfig,
    credentials: UpstreamCredentials,
    http: Callable[[UpstreamAuth | None], httpx2.AsyncClient],
    *,
    deadline: float,
    **options: Any,
) -> Probed:
    """Registration's probe (`gateway.federation.probe.probe`), a REST API's
    included: its tools are those its document became, nothing is sent."""
    if config.openapi is None:
        return await probe_mcp(config, credentials, http, deadline=deadline, **options)
    stored = config.openapi
    info = {"name": str(stored.get("title") or "REST API"), "version": str(stored.get("version"))}
    return Probed(connected=Connected(OPENAPI_PROTOCOL, info), tools=list(stored["tools"]))
