"""What an MCP server's registration must pass before it is probed
(`McpServers.register`), and the row it is stored as."""

from __future__ import annotations

from dataclasses import replace

from gateway.federation.credential_checks import UsersOwnChecks, check_users_own
from gateway.federation.credentials import stored_form, with_registrant
from gateway.federation.federated_tools import RegistrationRefused, check_command
from gateway.federation.openapi_source import LoadedApi
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.fetch import SafeFetcher
from registry.mcp_registration import McpServerRegistration
from registry.mcp_store import NewMcpServer


async def check_registration(
    registration: McpServerRegistration,
    admin: bool,
    fetcher: SafeFetcher,
    stdio_commands: tuple[tuple[str, ...], ...],
    users_own: UsersOwnChecks,
) -> None:
    """Refused before anything is probed or stored: a stdio command (an
    admin's, and allowed), a URL (the SSRF rules), where users' tokens go,
    the resource tokens are minted for."""
    if registration.reached_by == "stdio":
        if not admin:
            raise RegistrationRefused(
                f"registering a stdio server runs a command on the gateway: it needs {ADMIN_SCOPE}"
            )
        check_command(stdio_commands, registration.command or "", registration.args)
    else:
        assert registration.url is not None
        await fetcher.resolve(registration.url)  # FetchRefused: the SSRF rules
    check_users_own(registration.credential, admin, users_own)
    if not admin and registration.resource not in (None, registration.url):
        # The resource is the audience of tokens minted for the server; a
        # registrant choosing another target's audience would receive
        # tokens that target accepts.
        raise RegistrationRefused(
            f"only an admin may give a resource other than the server's URL ({ADMIN_SCOPE})"
        )


def new_server(
    registration: McpServerRegistration,
    server_id: str,
    principal: Principal,
    admin: bool,
    api: LoadedApi | None,
    sealing_secret: str | None,
) -> NewMcpServer:
    """The server's row: its credential sealed, its registrant named."""
    shown, sealed = stored_form(registration.credential, sealing_secret)
    shown = with_registrant(shown, principal.subject, principal.issuer)
    new = NewMcpServer(
        id=server_id,
        name=registration.name,
        transport=registration.reached_by,
        url=registration.url,
        command=(
            {"command": registration.command, "args": list(registration.args)}
            if registration.command
            else None
        ),
        resource=registration.resource or registration.url or f"urn:switchboard:mcp:{server_id}",
        timeout_seconds=registration.timeout_seconds,
        credential=shown,
        credential_secret=sealed,
        registered_by=principal.subject,
        trusted_registrant=admin,
        prefix_tools=registration.prefix_tools,
    )
    if api is not None:
        new = replace(new, transport="openapi", command={"openapi": api.stored()})
    return new
