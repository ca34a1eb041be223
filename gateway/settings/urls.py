"""URLs the settings derive: a bind address as a URL's host, and a database
URL naming the async driver the gateway uses."""

from __future__ import annotations


def url_host(host: str) -> str:
    """``host`` as a URL's host: a bind-all address is this machine's loopback,
    an IPv6 address is bracketed."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind-all address is not a URL host
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def with_async_driver(url: str) -> str:
    """`postgres://` and `postgresql://` (what most tools print) name the async
    driver the gateway uses, as `sqlite://` does; an explicit driver is kept."""
    scheme, sep, rest = url.partition("://")
    driver = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg"}.get(scheme)
    driver = driver or {"sqlite": "sqlite+aiosqlite"}.get(scheme)
    return f"{driver}{sep}{rest}" if driver and sep else url
