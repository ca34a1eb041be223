"""An OpenAPI document's `$ref`s, inlined -- or the reason they cannot be.

A REST API registered by its OpenAPI document (`registry.openapi_tools`)
becomes tools whose schemas must stand alone: an MCP client is given each
tool's ``inputSchema`` without the document around it. So every `$ref` is
replaced by what it points to, and a document is refused when that cannot be
done safely:

* only local references (``#/...``, a JSON Pointer, RFC 6901) are followed:
  a remote one (another file, a URL) would make registration fetch what the
  registrant chose, again, with no bound (OpenAPI 3.1 §4.8.23, "Reference Object");
* a reference that points nowhere is refused, not left dangling;
* a cycle (a schema that contains itself) cannot be inlined and is refused;
* inlining can multiply a document (one schema referenced from many places,
  each of which references many): the result is bounded in nodes, and a
  document over the bound is refused as too large.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MAX_INLINED_NODES = 200_000  # JSON values in the inlined document
MAX_DEPTH = 64  # nesting of the inlined document


class OpenApiRefused(ValueError):
    """The document cannot be registered; ``str()`` says why, for the registrant."""


def pointer_target(document: Any, ref: str) -> Any:
    """What a local reference (``#/a/b~1c``) points to (RFC 6901 §4), or refused."""
    if not ref.startswith("#"):
        raise OpenApiRefused(
            f"$ref {ref!r} is not local: only references inside the document (#/...) are followed"
        )
    pointer = unquote(ref[1:])  # a URI fragment is percent-encoded (RFC 6901 §6)
    if pointer and not pointer.startswith("/"):
        raise OpenApiRefused(f"$ref {ref!r} is not a JSON Pointer")
    node = document
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise OpenApiRefused(f"$ref {ref!r} cannot be resolved: nothing at {pointer!r}")
    return node


class _Inliner:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.nodes = 0

    def inline(self, node: Any, within: tuple[str, ...], depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_INLINED_NODES:
            raise OpenApiRefused(
                f"the document is too large once its $refs are inlined "
                f"(over {MAX_INLINED_NODES} values)"
            )
        if depth > MAX_DEPTH:
            raise OpenApiRefused(f"the document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return self._followed(node, ref, within, depth)
            return {str(k): self.inline(v, within, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self.inline(v, within, depth + 1) for v in node]
        return node

    def _followed(
        self, node: Mapping[str, Any], ref: str, within: tuple[str, ...], depth: int
    ) -> Any:
        if ref in within:
            chain = " -> ".join((*within[within.index(ref) :], ref))
            raise OpenApiRefused(f"$ref cycle, which cannot be inlined: {chain}")
        target = self.inline(pointer_target(self.document, ref), (*within, ref), depth + 1)
        # OpenAPI 3.1 lets `summary`/`description` sit beside a $ref (they
        # override the target's); anything else beside it is ignored there.
        beside = {k: node[k] for k in ("summary", "description") if k in node}
        if beside and isinstance(target, dict):
            return {**target, **beside}
        return target


def inlined(document: Mapping[str, Any]) -> dict[str, Any]:
    """The whole document with every `$ref` replaced by its target (a copy)."""
    result = _Inliner(document).inline(document, (), 0)
    assert isinstance(result, dict)
    return result
