"""The shape of an upstream URL a caller registers, checked where it is
given: a request naming no usable URL is the caller's mistake (422, naming
the field), found before anything is contacted or stored (issue 32: a host
with a space answered 502 "could not fetch", `http://[::1` a 500).

Whether the gateway may *reach* the URL (the SSRF policy: no private,
link-local or metadata addresses) is decided later, at registration and
again at connect time (`registry.ssrf`); this is only whether it is an
absolute http(s) URL with a host and port that can be connected to at all.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

# RFC 3986 §3.2.2: a reg-name is unreserved / pct-encoded / sub-delims; httpx
# also takes an internationalised name (encoded with IDNA). Refused: what no
# host holds -- whitespace, controls and the delimiters of the URL itself.
_NOT_IN_A_HOST = re.compile(r"""[\s\x00-\x1f\x7f"<>\\^`{|}/?#@]""")


def http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL a client could connect to."""
    if any(c.isspace() for c in value):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is no number or out of range
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    host = parts.hostname or ""
    if not host:
        raise ValueError("has no host")
    if not host.startswith("[") and ":" not in host and _NOT_IN_A_HOST.search(host):
        raise ValueError(f"has a host no server can have ({host!r})")
    return value


HttpUrlText = Annotated[str, Field(max_length=2048), AfterValidator(http_url)]
