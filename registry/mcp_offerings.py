"""Pure rules for what federated MCP servers offer besides tools: resource URIs
and prompts.

* **Resource URIs** must stay unambiguous across servers. A server's resource
  ``test://a`` is offered as ``switchboard://{server}/test://a`` -- the
  server's id as the authority, the upstream URI verbatim as the path -- and a
  resource template the same way (``switchboard://{server}/test://t/{id}``
  still expands as a template). A server registered with
  ``prefix_tools: false`` offers its URIs unchanged where no other such
  server offers one that could be the same URI (`uri_names`).
* **Resource templates** are matched against a URI to find the template a
  read comes from (RFC 6570, permissively: a variable matches any run of
  characters its operator could expand to).
* **Prompts** are named like tools (`registry.mcp_names`; `prompt_names`)
  and screened like tool descriptions (`screen_prompt`): a prompt's text is
  written by the server and read by the model.

Resources, templates and prompts are listed live, not stored, so a plain
(unprefixed) name cannot be "the first one's": a name two servers claim at
once is offered by neither under it (each offers it in its own form). No
server can take another's name by listing it later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from registry.mcp_names import (
    APP_SCHEME,
    GATEWAY_APP_PREFIX,
    Refusal,
    is_app_uri,
    is_plain,
    namespaced_name,
    reserved,
    reserved_uri,
)
from registry.mcp_tools import ToolFlag, screen_texts

SCHEME = "switchboard"
_PREFIX = f"{SCHEME}://"
# The parts of a prompt definition a client hands to its model.
PROMPT_FIELDS = ("name", "title", "description", "arguments")


def gateway_uri(server_id: str, uri: str) -> str:
    """``switchboard://{server}/{uri}``: the upstream URI, naming its server.
    An MCP App's ``ui://{rest}`` is ``ui://switchboard/{server}/{rest}``."""
    if is_app_uri(uri):
        return f"{GATEWAY_APP_PREFIX}{server_id}/{uri[len(APP_SCHEME) :]}"
    return f"{_PREFIX}{server_id}/{uri}"


def split_gateway_uri(uri: str) -> tuple[str, str] | None:
    """(server id, upstream URI) of a gateway URI; None for any other URI.
    One name per resource: an app's is only ever its ``ui://switchboard/``
    form, exactly as offered."""
    if uri.startswith(GATEWAY_APP_PREFIX):
        server_id, slash, rest = uri[len(GATEWAY_APP_PREFIX) :].partition("/")
        if not server_id or not slash or not rest:
            return None
        return server_id, APP_SCHEME + rest
    if not uri.startswith(_PREFIX):
        return None
    server_id, slash, upstream = uri[len(_PREFIX) :].partition("/")
    if not server_id or not slash or not upstream or is_app_uri(upstream):
        return None
    return server_id, upstream


def app_resource_meta(meta: Any) -> Any:
    """A resource's ``_meta`` as the gateway offers it: an MCP App's
    ``ui.domain`` (a sandbox origin the host derives from, or checks
    against, the server's own URL) is the upstream's, not the gateway's, so
    it is left out; all else (CSP, permissions, border) passes untouched."""
    ui = meta.get("ui") if isinstance(meta, Mapping) else None
    if not isinstance(ui, Mapping) or "domain" not in ui:
        return meta
    return {**meta, "ui": {k: v for k, v in ui.items() if k != "domain"}}


def apps_opened(meta: Any) -> set[str]:
    """The MCP Apps a tool's ``_meta`` opens (``ui.resourceUri`` and the older
    flat ``ui/resourceUri``), by the server's own ``ui://`` URIs."""
    if not isinstance(meta, Mapping):
        return set()
    ui = meta.get("ui")
    named = [ui.get("resourceUri") if isinstance(ui, Mapping) else None, meta.get("ui/resourceUri")]
    return {uri for uri in named if isinstance(uri, str) and is_app_uri(uri)}


def app_tool_meta(meta: Any, server_id: str) -> dict[str, Any] | None:
    """A tool's ``_meta`` with the MCP App it opens (``ui.resourceUri``, and
    the older flat ``ui/resourceUri``) named as the gateway offers that
    resource; None when there is nothing to rewrite."""
    if not isinstance(meta, Mapping):
        return None
    changed = dict(meta)
    ui = meta.get("ui")
    opens = ui.get("resourceUri") if isinstance(ui, Mapping) else None
    if isinstance(ui, Mapping) and isinstance(opens, str) and is_app_uri(opens):
        changed["ui"] = {**ui, "resourceUri": gateway_uri(server_id, opens)}
    flat = meta.get("ui/resourceUri")
    if isinstance(flat, str) and is_app_uri(flat):
        changed["ui/resourceUri"] = gateway_uri(server_id, flat)
    return changed if changed != meta else None


# --- RFC 6570 templates -------------------------------------------------------

_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^}]*)\}")
# What each operator's expansion may contain (level 4, with explode and prefix).
_OPERATOR_PATTERNS = {
    "": r"[^/?#&]*",  # simple: reserved characters are percent-encoded
    "+": r".*",  # reserved: anything
    "#": r"(?:#.*)?",
    ".": r"(?:\.[^/?#]*)*",
    "/": r"(?:/[^?#]*)*",
    ";": r"(?:;[^/?#]*)*",
    "?": r"(?:\?[^#]*)?",
    "&": r"(?:&[^#]*)*",
}


def template_pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching every URI ``template`` can expand to."""
    parts: list[str] = []
    end = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[end : match.start()]))
        parts.append(_OPERATOR_PATTERNS[match.group(1)])
        end = match.end()
    parts.append(re.escape(template[end:]))
    return re.compile("".join(parts), re.DOTALL)


def template_matches(template: str, uri: str) -> bool:
    # Literal text must match exactly; a template without variables is one URI.
    return template_pattern(template).fullmatch(uri) is not None


# --- Prompts --------------------------------------------------------------------


def prompt_definition(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a prompt definition (MCP JSON) a model reads."""
    return {k: prompt[k] for k in PROMPT_FIELDS if prompt.get(k) is not None}


def screen_prompt(prompt: Mapping[str, Any]) -> list[ToolFlag]:
    """Hidden Unicode and instruction-like text in a prompt's definition, as
    for a tool's (`registry.mcp_tools.screen_tool`)."""
    return screen_texts(prompt_definition(prompt))


# --- Names ------------------------------------------------------------------------

# (server id, the upstream's name or URI, whether the server's names are prefixed)
Claim = tuple[str, str, bool]


def prompt_names(claims: Sequence[Claim]) -> list[tuple[str, Refusal | None]]:
    """The name each prompt is offered under, and why it is withheld (None: it
    is not). A prefixed server's prompt: ``{server}__{name}``. An unprefixed
    server's: its own name where valid and claimed by no other server; a
    reserved one (`registry.mcp_names.reserved`) is withheld, under the
    server's own form, so it holds nobody else's name."""
    claimants: dict[str, set[str]] = {}
    for server_id, name, prefix in claims:
        if not prefix and is_plain(name) and reserved(name) is None:
            claimants.setdefault(name, set()).add(server_id)
    taken: set[str] = set()
    named: list[tuple[str, Refusal | None]] = []
    for server_id, name, prefix in claims:
        refusal = None
        if not prefix and name not in taken and claimants.get(name) == {server_id}:
            offered = name
        else:
            why = None if prefix or not is_plain(name) else reserved(name)
            if why is not None:
                refusal = Refusal(f"its own name {name!r} {why}", reserved=True)
            offered = namespaced_name(server_id, name, taken)
        taken.add(offered)
        named.append((offered, refusal))
    return named


def uri_names(
    resources: Sequence[Claim], templates: Sequence[Claim]
) -> tuple[list[str], list[str]]:
    """The URI each resource, and each template, is offered under. A prefixed
    server's: `gateway_uri`. An unprefixed server's: unchanged, unless it is of
    the gateway's scheme, an MCP App's (`ui://`: its tools' references are
    rewritten alike, `app_tool_meta`), or another unprefixed server offers a
    resource or template that could be the same URI; then `gateway_uri`."""
    plain_resources = [(i, c) for i, c in enumerate(resources) if not c[2] and _may_stay(c[1])]
    plain_templates = [(i, c) for i, c in enumerate(templates) if not c[2] and _may_stay(c[1])]
    by_uri: dict[str, set[str]] = {}
    for _, (server_id, uri, _) in plain_resources:
        by_uri.setdefault(uri, set()).add(server_id)
    contested = {i for i, (_, uri, _) in plain_resources if len(by_uri[uri]) > 1}
    contested_templates: set[int] = set()
    for n, (i, (server_id, template, _)) in enumerate(plain_templates):
        pattern = template_pattern(template)
        for j, (other, uri, _) in plain_resources:
            if other != server_id and pattern.fullmatch(uri):
                contested |= {j}
                contested_templates |= {i}
        for k, (other, template_k, _) in plain_templates[n + 1 :]:
            if other != server_id and _may_overlap(template, template_k):
                contested_templates |= {i, k}
    kept = {i for i, _ in plain_resources} - contested
    kept_templates = {i for i, _ in plain_templates} - contested_templates
    return (
        [uri if i in kept else gateway_uri(s, uri) for i, (s, uri, _) in enumerate(resources)],
        [t if i in kept_templates else gateway_uri(s, t) for i, (s, t, _) in enumerate(templates)],
    )


def _may_stay(uri: str) -> bool:
    return not reserved_uri(uri) and not is_app_uri(uri)


def _may_overlap(first: str, second: str) -> bool:
    """Whether some URI could match both templates (conservatively: their
    literal starts agree, or a template without variables matches the other)."""
    if "{" not in first:
        return template_matches(second, first)
    if "{" not in second:
        return template_matches(first, second)
    start_a, start_b = first.split("{", 1)[0], second.split("{", 1)[0]
    return start_a.startswith(start_b) or start_b.startswith(start_a)
