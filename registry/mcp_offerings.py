"""Pure rules for what federated MCP servers offer besides tools: resource URIs
and prompts.

* **Resource URIs** must stay unambiguous across servers. A server's resource
  ``test://a`` is offered as ``switchboard://{server}/test://a`` -- the
  server's id as the authority, the upstream URI verbatim as the path -- and a
  resource template the same way (``switchboard://{server}/test://t/{id}``
  still expands as a template). A server registered with
  ``prefix_tools: false`` offers its URIs unchanged, where no server
  registered before it offers the same one (see `UriNamer`).
* **Resource templates** are matched against a URI to find the template a
  read comes from (RFC 6570, permissively: a variable matches any run of
  characters its operator could expand to).
* **Prompts** are named like tools (`registry.mcp_tools.federated_name`) and
  screened like tool descriptions (`screen_prompt`): a prompt's text is
  written by the server and read by the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from registry.mcp_tools import ToolFlag, screen_texts

SCHEME = "switchboard"
_PREFIX = f"{SCHEME}://"
# The parts of a prompt definition a client hands to its model.
PROMPT_FIELDS = ("name", "title", "description", "arguments")


def gateway_uri(server_id: str, uri: str) -> str:
    """``switchboard://{server}/{uri}``: the upstream URI, naming its server."""
    return f"{_PREFIX}{server_id}/{uri}"


def split_gateway_uri(uri: str) -> tuple[str, str] | None:
    """(server id, upstream URI) of a gateway URI; None for any other URI."""
    if not uri.startswith(_PREFIX):
        return None
    server_id, slash, upstream = uri[len(_PREFIX) :].partition("/")
    if not server_id or not slash or not upstream:
        return None
    return server_id, upstream


class UriNamer:
    """Names URIs (or URI templates) in one listing, servers in registration order.

    A prefixed server's URIs are always `gateway_uri`. An unprefixed server's
    URI is kept when it is not a gateway URI and no server named earlier in
    this listing kept the same one; otherwise it gets the gateway form too.
    The same order is used to route a plain URI back to its server, so the
    server a URI is listed under is the server a read of it reaches.
    """

    def __init__(self) -> None:
        self._kept: set[str] = set()

    def name(self, server_id: str, uri: str, *, prefix: bool) -> str:
        if prefix or uri in self._kept or split_gateway_uri(uri) is not None:
            return gateway_uri(server_id, uri)
        self._kept.add(uri)
        return uri


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
