"""One namespace for every name `/mcp` offers (pure rules).

`/mcp` offers tools (federated servers' tools, agents' skills, the gateway's
own), prompts, resources and resource templates. A name there means exactly
one target, by these rules -- never by which source happens to be looked up
first:

* **Owned forms.** ``{id}__{name}`` belongs to the target with that id: the
  MCP server or agent (the two share one id space, so one id is one target).
  When ``{id}__{name}`` would need cleaning or be too long, `namespaced_name`
  gives a hashed form of it instead, which belongs to the same target; cut
  short, that form can lose the separator, so its *shape* (64 characters,
  the start of an id, ``_`` and 8 or more hex digits) is owned too.
* **The gateway's own.** Names starting ``switchboard__`` (the approval
  status tool today; flows, later, will be named ``switchboard__flow...``)
  and URIs of the ``switchboard:`` scheme are the gateway's. The id
  ``switchboard`` is reserved, so no agent or server can produce them.
* **Plain names.** A server registered with ``prefix_tools: false`` offers
  its tools', prompts' and resources' own names -- where a name is valid,
  not `reserved` (it contains the separator, starts with the gateway's
  prefix, or has the shape of a hashed owned form: anything prefixing could
  produce) and free. Otherwise the server's owned form.

`withheld` says whether a stored federated tool may be offered under the name
it holds (rows stored before these rules were enforced may not); the store
refuses a registration, an approval, or an agent, whose names would collide
(`NameConflict`, `NameReserved`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from registry.models import AGENT_ID_PATTERN

# MCP 2025-11-25 "Tool names": 1-128 of [A-Za-z0-9_.-]. A federated name is
# kept to the stricter set most model APIs accept for function names,
# ^[a-zA-Z0-9_-]{1,64}$ (no dots), so any client can pass it on as is.
MAX_NAME = 64
SEPARATOR = "__"
GATEWAY_ID = "switchboard"
GATEWAY_PREFIX = GATEWAY_ID + SEPARATOR
GATEWAY_SCHEME = GATEWAY_ID + ":"
# MCP Apps (SEP-1865): a host renders only `ui://` resources, so an app's URI
# offered by the gateway stays `ui://`, under the gateway's own authority.
APP_SCHEME = "ui://"
GATEWAY_APP_PREFIX = APP_SCHEME + GATEWAY_ID + "/"
RESERVED_IDS = frozenset({GATEWAY_ID})
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LEN = 8
# A hashed owned form cut before its separator: the start of an id, `_`, hex.
_CUT_HASHED = re.compile(r"[a-z0-9-]+_[0-9a-f]{8,}")
_ID = re.compile(AGENT_ID_PATTERN)


class NameConflict(Exception):
    """A name would mean a second target on /mcp (409 ``mcp-name-conflict``)."""


class NameReserved(NameConflict):
    """A name (or id) of a form reserved for others (409 ``mcp-name-reserved``)."""


@dataclass(frozen=True)
class Refusal:
    """Why a name may not be offered (``reserved``: because of its form)."""

    reason: str
    reserved: bool = False

    def error(self, subject: str) -> NameConflict:
        text = f"{subject}: {self.reason}"
        return NameReserved(text) if self.reserved else NameConflict(text)


def is_reserved_id(target_id: str) -> bool:
    return target_id in RESERVED_IDS


def reserved_id(target_id: str) -> Refusal | None:
    if is_reserved_id(target_id):
        return Refusal(
            f"the id {target_id!r} is reserved: names starting {GATEWAY_PREFIX} are the gateway's",
            reserved=True,
        )
    return None


def owner_of(name: str) -> str | None:
    """The id an ``{id}__{name}`` name belongs to (None: not of that form)."""
    head, separator, _ = name.partition(SEPARATOR)
    return head if separator and _ID.fullmatch(head) else None


def cut_hashed(name: str) -> bool:
    """Whether ``name`` has the shape of a hashed owned form cut before its separator."""
    return len(name) == MAX_NAME and _CUT_HASHED.fullmatch(name) is not None


def reserved(name: str) -> str | None:
    """Why an unprefixed name may not be offered as is (None: it may)."""
    if name.startswith(GATEWAY_PREFIX):
        return f"starts with {GATEWAY_PREFIX}, the gateway's own prefix"
    if SEPARATOR in name:
        return (
            f"contains {SEPARATOR!r}, the separator of {{id}}{SEPARATOR}{{name}} names "
            "(agents' skills, prefixed servers' tools)"
        )
    if cut_hashed(name):
        return "has the shape of a hashed {id}__{name} name"
    return None


def reserved_uri(uri: str) -> bool:
    """Whether an upstream URI or template may not be offered as is: the
    gateway's scheme, and the gateway's authority of `ui://` (`is_app_uri`)."""
    head = uri[: len(GATEWAY_APP_PREFIX)].lower()
    return head.startswith(GATEWAY_SCHEME) or head == GATEWAY_APP_PREFIX


def is_app_uri(uri: str) -> bool:
    """An MCP App's resource (`ui://`, SEP-1865): always offered in the
    gateway's form, so a tool's reference to it can be rewritten alike."""
    return uri[: len(APP_SCHEME)].lower() == APP_SCHEME


def owns(target_id: str, name: str) -> bool:
    """Whether ``name`` is one of the forms `namespaced_name` gives ``target_id``."""
    if name.startswith(target_id + SEPARATOR):
        return True
    return cut_hashed(name) and target_id.startswith(name[: name.rindex("_")])


def gateways(name: str) -> bool:
    """Whether ``name`` belongs to the gateway itself."""
    return name.startswith(GATEWAY_PREFIX)


def withheld(server_id: str, upstream_name: str, offered: str) -> Refusal | None:
    """Why a federated tool (or prompt) named ``upstream_name`` on ``server_id``
    may not be offered as ``offered`` (None: it may). Rows stored before these
    rules were checked can hold a name that is not theirs to hold."""
    if is_reserved_id(server_id) or gateways(offered):
        return Refusal(f"{offered!r} belongs to the gateway", reserved=True)
    if offered == upstream_name:  # kept unprefixed
        why = reserved(offered)
        return Refusal(f"its own name {offered!r} {why}", reserved=True) if why else None
    if owns(server_id, offered):
        return None
    return Refusal(f"{offered!r} is not a name of MCP server {server_id}")


# --- Naming ------------------------------------------------------------------------


def is_plain(name: str) -> bool:
    """A valid federated name as it stands: [A-Za-z0-9_-], 1-64 characters."""
    return 0 < len(name) <= MAX_NAME and not _NAME_SAFE.search(name)


def keeps_own_name(name: str, taken: Iterable[str] = ()) -> bool:
    """Whether an unprefixed server's ``name`` is offered as it stands."""
    return is_plain(name) and reserved(name) is None and name not in taken


def federated_name(
    server_id: str, tool_name: str, taken: frozenset[str] = frozenset(), *, prefix: bool = True
) -> str:
    """The name a tool (or prompt) is offered under. With ``prefix`` (the
    default), `namespaced_name`. Without (an operator's choice per server, so a
    server's tools keep the names its clients and tests know), the tool's own
    name when `keeps_own_name`; otherwise -- a name held by another server's
    tool, a reserved one, or one that needs cleaning -- the namespaced name."""
    if not prefix and keeps_own_name(tool_name, taken):
        return tool_name
    return namespaced_name(server_id, tool_name, taken)


def skill_tool_name(agent_id: str, skill_id: str) -> str:
    """The tool an agent's skill is offered as on /mcp."""
    return namespaced_name(agent_id, skill_id)


def namespaced_name(server_id: str, tool_name: str, taken: AbstractSet[str] = frozenset()) -> str:
    """The federated name of ``tool_name`` on ``server_id`` (a server or an agent).

    ``{server}__{tool}`` when the tool name needs no change and the whole fits
    in 64 characters. Otherwise (characters outside [A-Za-z0-9_-] replaced,
    or too long) the name is cut and given ``_`` + a hash of the exact
    (server id, tool name) pair, so two tools whose names clean up alike
    never meet. Server ids never contain ``_``, so the plain form splits at
    its first ``__`` unambiguously: plain names cannot collide with each
    other. Only a hashed name can meet an existing one (``taken``); then the
    hash grows until it is free. Names are stored when first given, so they
    stay stable across refreshes.
    """
    clean = _NAME_SAFE.sub("_", tool_name) or "_"
    plain = f"{server_id}{SEPARATOR}{clean}"
    if clean == tool_name and len(plain) <= MAX_NAME and plain not in taken:
        return plain
    digest = hashlib.sha256(f"{server_id}\x00{tool_name}".encode()).hexdigest()
    for length in range(_HASH_LEN, len(digest) + 1, 4):
        suffix = "_" + digest[:length]
        candidate = plain[: MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise ValueError(f"no free name for {tool_name!r} on {server_id}")  # pragma: no cover


def natural_name(server_id: str, tool_name: str) -> str | None:
    """``{server}__{tool}`` when that is the form `namespaced_name` gives first."""
    plain = f"{server_id}{SEPARATOR}{tool_name}"
    return plain if is_plain(tool_name) and len(plain) <= MAX_NAME else None
