"""The `/mcp` transport's security settings, from the gateway's: which hosts
and origins it answers (DNS rebinding protection) and the key that seals a
`requestState` so that any replica can open it."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecuritySettings

from gateway.settings import Settings
from policies.keys import derive_key


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS rebinding protection (MCP 2025-11-25 "Transports", security warning):
    the public URL's host, the configured ones, and loopback in dev mode. The
    SDK's default allowlist is loopback only, which 421s a real host name."""
    public = urlsplit(settings.effective_public_url)
    hosts = [public.netloc, *settings.mcp_allowed_hosts]
    if public.port is None and public.hostname:
        hosts.append(f"{public.hostname}:*")
    origins = [f"{public.scheme}://{public.netloc}", *settings.mcp_allowed_origins]
    if settings.dev:
        for loopback in ("127.0.0.1", "localhost", "[::1]"):
            hosts += [loopback, f"{loopback}:*"]
            origins += [f"http://{loopback}", f"http://{loopback}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def request_state_security(settings: Settings) -> RequestStateSecurity:
    """`requestState` is sealed (AES-GCM) and bound to the caller and the
    request by the SDK; every replica derives the same key from the secret."""
    if settings.sealing_secret:
        return RequestStateSecurity(keys=[derive_key(settings.sealing_secret, "mcp requestState")])
    return RequestStateSecurity.ephemeral()  # --dev without a secret: this process only
