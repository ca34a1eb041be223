"""Tokens from the dev issuer, signed with the gateway key in the data dir / database
(`switchboard token issue`, the CLI's own admin calls, the demo, the tests).

Only a `--dev` gateway accepts them (`policies.tokens.DEV_CLIENT_ID`).
"""

from __future__ import annotations

import asyncio

from gateway.delegation.keystore import load_active_key
from gateway.settings import Settings
from gateway.storage import runstate
from policies.tokens import DEV_CLIENT_ID, mint_access_token


def issue_dev_token(
    settings: Settings, subject: str, scopes: frozenset[str], ttl_seconds: int
) -> str:
    """A token from the dev issuer, signed with the gateway key in the data dir / database.

    It names the issuer and audience the running gateway uses (from its run
    state), so it works while the server runs, whatever port it was given.
    """
    running = runstate.read(settings.data_dir)
    issuer = settings.public_url or running.get("public_url") or settings.effective_public_url
    audience = settings.resource_id or running.get("resource_id") or issuer

    key = asyncio.run(load_active_key(settings.effective_database_url, settings.sealing_secret))
    return mint_access_token(
        key,
        issuer=issuer,
        subject=subject,
        audience=audience,
        scopes=scopes,
        ttl_seconds=ttl_seconds,
        client_id=DEV_CLIENT_ID,
    )
