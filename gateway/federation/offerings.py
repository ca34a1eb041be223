"""What federated MCP servers offer besides tools: resources, resource
templates, prompts and completions -- under the rules tools follow.

* **Per user**: a listing shows what the policy lets this caller read or get,
  by the very decision a read or get runs (`may_read`, `may_get`): a resource
  is an action of kind ``resource`` on its server, named by its upstream URI,
  or by the URI template a read matches; a prompt is kind ``prompt``, named
  by its upstream name.
* **Apps follow their tools** (`gateway.federation.app_rights`): an app that
  a tool opens is listed and read only by a caller who may call that tool,
  unless the policy names the resource itself.
* **Namespacing** (`registry.mcp_offerings`, `registry.mcp_names`): URIs
  become ``switchboard://{server}/{uri}`` and prompt names
  ``{server}__{name}``, except on servers registered with
  ``prefix_tools: false``, which keep their own where no other server claims
  the same (then neither keeps it) and the name is not reserved (a prompt
  whose own name is, say ``{agent}__{skill}``, is withheld). One name, one
  server: a listing and a read or get resolve names the same way.
* **The upstream's own credential**: listings go out with the gateway's
  identity (as tool listings do); a read, get or completion runs the
  delegation pipeline (decide -> mint -> the server's credential for this
  call -> audit, event ``mcp``). The caller's token never goes upstream.
* **Screening**: a prompt's definition is screened like a tool's
  (hidden Unicode, instruction-like text); a flagged prompt is withheld:
  not listed, and a get is refused.

Nothing here is stored: listings are read from the live sessions (kept for
`offering_listings.LISTING_SECONDS`), so a server's resources and prompts are what it offers now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import mcp_types as types
from mcp.client.session import ClientSession

from adapters.mcp import UpstreamUnavailable
from adapters.operations import Operation
from adapters.trace_context import new_trace_id
from gateway.delegation.call import Call
from gateway.delegation.delegate import Sending
from gateway.delegation.pipeline import Caller, Permit
from gateway.federation.app_rights import AppRights
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    SERVER_INFO_META_KEY,
)
from gateway.federation.federation import McpFederation
from gateway.federation.offered import (
    OfferedPrompt,
    OfferedResource,
    OfferedTemplate,
    PromptNotFound,
    PromptWithheld,
    ResourceNotFound,
)
from gateway.federation.offering_calls import offering_sending
from gateway.federation.offering_listings import Catalog, Kind, OfferingListings, Source
from policies.policy import ActionKind, Target
from registry.mcp_offerings import (
    app_resource_meta,
    gateway_uri,
    split_gateway_uri,
    template_matches,
)

R = TypeVar("R", bound=types.Result)


@dataclass(frozen=True)
class _ResolvedUri:
    source: Source
    upstream_uri: str
    action: str  # the policy's name for it: the listed URI or the matching template
    gateway_form: bool


class McpOfferings:
    def __init__(self, federation: McpFederation) -> None:
        self.federation = federation
        self.apps = AppRights(federation)  # who may open an app: its tools decide too
        self._listed = OfferingListings(federation)

    def forget(self, server_id: str, kind: Kind) -> None:
        """Drop a kept listing: the server said it changed."""
        self._listed.forget(server_id, kind)

    # --- Decisions (the one function listings and calls share) -------------------------

    def may_read(self, caller: Caller, server_id: str, action: str) -> bool:
        return self._may(caller, server_id, action, "resource")

    def may_get(self, caller: Caller, server_id: str, prompt: str) -> bool:
        return self._may(caller, server_id, prompt, "prompt")

    def _may(self, caller: Caller, server_id: str, action: str, kind: ActionKind) -> bool:
        # As for tools: a call that needs human approval is refused, so it is not listed.
        decision = self.federation.delegations.decide(caller, Target(server_id), action, kind)
        return decision.allowed and not decision.approval_required

    # --- Listings ------------------------------------------------------------------------

    async def resources(self, caller: Caller) -> list[OfferedResource]:
        catalog = await self._listed.catalog({"resources"})
        openers = await self.apps.openers()
        return [
            r
            for r in catalog.resources
            if self.may_read(caller, r.server_id, r.upstream_uri)
            and self.apps.refusal(caller, r.server_id, r.upstream_uri, r.upstream_uri, openers)
            is None
        ]

    async def templates(self, caller: Caller) -> list[OfferedTemplate]:
        catalog = await self._listed.catalog({"templates"})
        return [
            t for t in catalog.templates if self.may_read(caller, t.server_id, t.upstream_template)
        ]

    async def prompts(self, caller: Caller) -> list[OfferedPrompt]:
        catalog = await self._listed.catalog({"prompts"})
        return [
            p
            for p in catalog.prompts
            if not p.flags and self.may_get(caller, p.server_id, p.upstream_name)
        ]

    async def of_server(
        self, server_id: str
    ) -> tuple[list[OfferedResource], list[OfferedTemplate], list[OfferedPrompt]]:
        """Everything one server offers now, withheld prompts with their flags,
        no decision applied: what an admin reviews (the console)."""
        catalog = await self._listed.catalog({"resources", "prompts"})
        return (
            [r for r in catalog.resources if r.server_id == server_id],
            [t for t in catalog.templates if t.server_id == server_id],
            [p for p in catalog.prompts if p.server_id == server_id],
        )

    # --- Calls ---------------------------------------------------------------------------

    async def read_resource(
        self,
        uri: str,
        *,
        caller: Caller,
        trace_id: str | None = None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        """Read ``uri`` (as offered) on ``caller``'s behalf. Raises
        `ResourceNotFound`, `DelegationDenied`, and the upstream errors."""
        found = await self._resolve_uri(uri)
        trace_id = trace_id or new_trace_id()
        await self.apps.refuse(caller, found.source.id, found.upstream_uri, found.action, trace_id)
        result = await self._call(
            self._call_of(caller, found.source, found.action, "resource", trace_id),
            found.source,
            "resources/read",
            lambda session: session.read_resource(
                found.upstream_uri,
                input_responses=input_responses,
                request_state=request_state,
                allow_input_required=True,
            ),
        )
        if isinstance(result, types.ReadResourceResult) and found.gateway_form:
            contents = [
                c.model_copy(
                    update={
                        "uri": gateway_uri(found.source.id, c.uri),
                        "meta": app_resource_meta(c.meta),
                    }
                )
                for c in result.contents
            ]
            result = result.model_copy(update={"contents": contents})
        return _restamped(result)

    async def subscription_target(self, uri: str, caller: Caller) -> tuple[str, str]:
        """(server id, upstream URI) of a resource ``caller`` may read; what a
        subscription is kept under. Raises `ResourceNotFound`, `DelegationDenied`."""
        found = await self._resolve_uri(uri)
        trace_id = new_trace_id()
        await self.apps.refuse(caller, found.source.id, found.upstream_uri, found.action, trace_id)
        call = self._call_of(caller, found.source, found.action, "resource", trace_id)
        # Decided, minted and recorded (a denial is audited); nothing is sent now.
        await self.federation.delegate.answer(call, _subscribed)
        return found.source.id, found.upstream_uri

    async def get_prompt(
        self,
        name: str,
        arguments: Mapping[str, str] | None,
        *,
        caller: Caller,
        trace_id: str | None = None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> types.GetPromptResult | types.InputRequiredResult:
        """Get the prompt ``name`` (as offered). Raises `PromptNotFound`,
        `PromptWithheld`, `DelegationDenied`, and the upstream errors."""
        prompt, source = await self._prompt(name)
        result = await self._call(
            self._call_of(caller, source, prompt.upstream_name, "prompt", trace_id),
            source,
            "prompts/get",
            lambda session: session.get_prompt(
                prompt.upstream_name,
                dict(arguments) if arguments is not None else None,
                input_responses=input_responses,
                request_state=request_state,
                allow_input_required=True,
            ),
            withheld=PromptWithheld(prompt) if prompt.flags else None,
        )
        return _restamped(result)

    async def complete(
        self, params: types.CompleteRequestParams, *, caller: Caller, trace_id: str | None = None
    ) -> types.CompleteResult:
        """Completion for a prompt's or a resource template's argument, by the
        server that owns it, under the decision a get or read of it runs."""
        ref: types.PromptReference | types.ResourceTemplateReference
        kind: ActionKind
        if isinstance(params.ref, types.PromptReference):
            prompt, source = await self._prompt(params.ref.name)
            action, kind = prompt.upstream_name, "prompt"
            ref = params.ref.model_copy(update={"name": prompt.upstream_name})
        else:
            source, upstream, action = await self._resolve_template(params.ref.uri)
            kind = "resource"
            ref = params.ref.model_copy(update={"uri": upstream})
        forwarded = params.model_copy(update={"ref": ref, "meta": None})
        result = await self._call(
            self._call_of(caller, source, action, kind, trace_id),
            source,
            "completion/complete",
            lambda session: session.send_request(
                types.CompleteRequest(params=forwarded), types.CompleteResult
            ),
        )
        return _restamped(result)

    # --- Helpers -------------------------------------------------------------------------

    async def server_of_uri(self, uri: str) -> str:
        """The server a resource URI (as offered) belongs to; raises `ResourceNotFound`."""
        return (await self._resolve_uri(uri)).source.id

    async def server_of_template(self, uri_template: str) -> str:
        return (await self._resolve_template(uri_template))[0].id

    async def server_of_prompt(self, name: str) -> str:
        """The server a prompt (as offered) belongs to; raises `PromptNotFound`."""
        return (await self._prompt(name))[0].server_id

    async def _resolve_uri(self, uri: str) -> _ResolvedUri:
        """The server a URI (as offered) belongs to, its upstream URI, and the
        policy's name for it. A plain URI goes where the listing put it."""
        catalog = await self._listed.catalog({"resources", "templates"})
        split = split_gateway_uri(uri)
        if split is not None:
            server_id, upstream_uri = split
            source = await self._source(server_id)
            if source is None:
                if any(c.id == server_id for c in await self.federation.server_configs()):
                    raise UpstreamUnavailable(f"MCP server {server_id} is not connected")
                raise ResourceNotFound(uri)
            return _ResolvedUri(
                source, upstream_uri, _action(catalog, server_id, upstream_uri), True
            )
        candidates = [r.server_id for r in catalog.resources if r.uri == uri] + [
            t.server_id
            for t in catalog.templates
            if split_gateway_uri(t.uri_template) is None and template_matches(t.uri_template, uri)
        ]
        if len(set(candidates)) != 1:
            # None; or (never, by `uri_names`) servers that each claim it.
            raise ResourceNotFound(uri)
        source = await self._source(candidates[0])
        if source is None:  # pragma: no cover - it was listed a moment ago
            raise ResourceNotFound(uri)
        return _ResolvedUri(source, uri, _action(catalog, source.id, uri), False)

    async def _resolve_template(self, uri_template: str) -> tuple[Source, str, str]:
        catalog = await self._listed.catalog({"templates"})
        for template in catalog.templates:
            if template.uri_template == uri_template:
                source = await self._source(template.server_id)
                if source is not None:
                    return source, template.upstream_template, template.upstream_template
        raise ResourceNotFound(uri_template)

    async def _prompt(self, name: str) -> tuple[OfferedPrompt, Source]:
        catalog = await self._listed.catalog({"prompts"})
        for prompt in catalog.prompts:
            if prompt.name == name:
                source = await self._source(prompt.server_id)
                if source is not None:
                    return prompt, source
        raise PromptNotFound(name)

    async def _source(self, server_id: str) -> Source | None:
        configs = [c for c in await self.federation.server_configs() if c.id == server_id]
        sources = self._listed.sources(configs)
        return sources[0] if sources else None

    def _call_of(
        self, caller: Caller, source: Source, action: str, kind: ActionKind, trace_id: str | None
    ) -> Call[Target]:
        return Call(
            caller,
            Target(source.id),
            event=AUDIT_EVENT,
            trace_id=trace_id or new_trace_id(),
            action=action,
            kind=kind,
            audience=source.config.resource,
        )

    async def _call(
        self,
        call: Call[Target],
        source: Source,
        method: str,
        send: Callable[[ClientSession], Awaitable[R]],
        withheld: PromptWithheld | None = None,
    ) -> R:
        """The upstream, through the delegation core (`Delegate.call`,
        `offering_calls`): decided and minted (a denial is audited), a
        ``withheld`` prompt refused and recorded, else sent and recorded; a
        prompt's name is its span's target (mcp.md "Span name")."""
        name = call.action if method == "prompts/get" else None
        operation = Operation.mcp(source.id, source.config.transport, method, name)
        timeout = source.config.timeout_seconds or self.federation.default_timeout_seconds
        delegate = self.federation.delegate

        async def side(permit: Permit) -> Sending[R]:
            if withheld is not None:
                await delegate.record(permit, AUDIT_EVENT, "quarantined", str(withheld))
                raise withheld
            return offering_sending(
                permit, operation, source.upstream, source.credentials, send, timeout
            )

        return await delegate.call(call, side)


async def _subscribed(_: Permit) -> tuple[None, str]:
    return None, "resources/subscribe"


def _offered_as(resource: types.Resource, uri: str) -> types.Resource:
    return resource.model_copy(update={"uri": uri, "meta": app_resource_meta(resource.meta)})


def _action(catalog: Catalog, server_id: str, upstream_uri: str) -> str:
    """The policy's name for a read: the URI when the server lists it, else
    the first of its templates the URI matches, else the URI itself."""
    for resource in catalog.resources:
        if resource.server_id == server_id and resource.upstream_uri == upstream_uri:
            return upstream_uri
    for template in catalog.templates:
        if template.server_id == server_id and template_matches(
            template.upstream_template, upstream_uri
        ):
            return template.upstream_template
    return upstream_uri


def _restamped(result: R) -> R:
    """Drop the upstream's identity stamp: the front end stamps the gateway's own."""
    meta = result.meta
    if meta and SERVER_INFO_META_KEY in meta:
        cleaned = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
        return result.model_copy(update={"meta": cleaned or None})
    return result
