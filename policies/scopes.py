"""OAuth scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens."""

from __future__ import annotations

import re

ADMIN_SCOPE = "switchboard:admin"
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII minus '"' and '\'.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class ScopeSyntaxError(ValueError):
    pass


def parse_scopes(value: str) -> frozenset[str]:
    scopes = frozenset(value.split())
    bad = [s for s in scopes if not _SCOPE_TOKEN.match(s)]
    if bad:
        raise ScopeSyntaxError(f"invalid scope token(s): {', '.join(sorted(bad))}")
    return scopes


# May register MCP servers reached over HTTP (stdio servers always need admin).
MCP_REGISTER_SCOPE = "switchboard:mcp-register"
