"""Push webhook credentials sealed at rest: `a2a_push_configs.credentials_sealed`.

Until now a client's `authentication.credentials` sat in plain text inside
`a2a_push_configs.config`. This moves each one into the new column, sealed
with the operator's secret, which `gateway.storage.db.upgrade` hands to the migration
(`switchboard serve` and `switchboard db upgrade` pass SWITCHBOARD_SECRET_KEY).
No plain copy is left in `config`. Run without a secret (``--dev``), the value
is moved as it is, as `policies.keys.seal_secret` stores everything without
one; a gateway that later runs with a secret refuses to use such a value (that
one notification is not forwarded, and the gateway logs why) until the client
sets the config again.

A value sealed with the wrong secret could never be opened again, so when
there is anything to seal the secret is first tried on the gateway's own
signing key (sealed with the same secret since 0001): a wrong secret, or none
where the key is sealed, stops the migration before it changes anything
(`switchboard serve` checks the secret only after migrating).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""

from typing import Any

import sqlalchemy as sa
from alembic import context, op

from policies.keys import KeySealError, open_private_key, open_secret, seal_secret

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The same purpose as gateway.delegation.push.SEAL_PURPOSE: it names the HKDF key, so it
# is part of the stored format and must never change.
SEAL_PURPOSE = "a2a-push-credentials"

_configs = sa.table(
    "a2a_push_configs",
    sa.column("agent_id", sa.String),
    sa.column("task_id", sa.String),
    sa.column("config_id", sa.String),
    sa.column("config", sa.JSON),
    sa.column("credentials_sealed", sa.Text),
)


_signing_keys = sa.table(
    "signing_keys",
    sa.column("kid", sa.String),
    sa.column("private_key", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    secret = _secret()
    # Before any change (SQLite does not roll DDL back): refuse a secret that
    # does not open the signing key when there are credentials to seal.
    stored = op.get_bind().execute(sa.select(_configs.c.config)).scalars().all()
    if any(((d or {}).get("authentication") or {}).get("credentials") for d in stored):
        _check_secret(secret)
    with op.batch_alter_table("a2a_push_configs") as batch:
        batch.add_column(sa.Column("credentials_sealed", sa.Text, nullable=True))
    for row in _rows():
        config = dict(row.config)
        authentication = dict(config.get("authentication") or {})
        credentials = authentication.pop("credentials", None)
        if not credentials:
            continue
        config["authentication"] = authentication
        _update(row, config, seal_secret(credentials, secret, SEAL_PURPOSE))


def downgrade() -> None:
    secret = _secret()
    for row in _rows():
        if row.credentials_sealed is None:
            continue
        try:
            credentials = open_secret(row.credentials_sealed, secret, SEAL_PURPOSE)
        except KeySealError as exc:
            raise RuntimeError(f"cannot put push credentials back in plain text: {exc}") from None
        config = dict(row.config)
        config["authentication"] = {
            **(config.get("authentication") or {}),
            "credentials": credentials,
        }
        _update(row, config, None)
    with op.batch_alter_table("a2a_push_configs") as batch:
        batch.drop_column("credentials_sealed")


def _check_secret(secret: str | None) -> None:
    newest = (
        op.get_bind()
        .execute(
            sa.select(_signing_keys.c.kid, _signing_keys.c.private_key)
            .order_by(_signing_keys.c.created_at.desc())
            .limit(1)
        )
        .first()
    )
    if newest is None:
        return  # no key yet: nothing says which secret is the gateway's
    try:
        open_private_key(newest.private_key, secret)
    except KeySealError as exc:
        raise RuntimeError(
            f"migration 0009 seals stored push credentials with SWITCHBOARD_SECRET_KEY, "
            f"but {exc} (signing key {newest.kid}); nothing was changed"
        ) from None


def _secret() -> str | None:
    secret: str | None = context.config.attributes.get("sealing_secret")
    return secret


def _rows() -> list[Any]:
    return list(op.get_bind().execute(sa.select(_configs)).all())


def _update(row: Any, config: dict[str, Any], sealed: str | None) -> None:
    op.get_bind().execute(
        _configs.update()
        .where(
            _configs.c.agent_id == row.agent_id,
            _configs.c.task_id == row.task_id,
            _configs.c.config_id == row.config_id,
        )
        .values(config=config, credentials_sealed=sealed)
    )
