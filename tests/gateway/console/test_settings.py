"""The console's OIDC client must use an issuer the gateway already trusts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings

ISSUER = {"issuer": "https://idp.example", "jwks_url": "https://idp.example/jwks"}


def test_the_console_logs_in_only_with_a_trusted_issuer(tmp_path: Path) -> None:
    oidc = {"issuer": "https://idp.example", "client_id": "console"}
    with pytest.raises(ValidationError, match="not one of trusted_issuers"):
        Settings(dev=True, data_dir=tmp_path, console={"oidc": oidc})
    settings = Settings(
        dev=True, data_dir=tmp_path, trusted_issuers=[ISSUER], console={"oidc": oidc}
    )
    assert settings.console.oidc is not None and settings.console.oidc.scope == "openid"
    with pytest.raises(ValidationError):
        Settings(dev=True, data_dir=tmp_path, console={"session_seconds": 5})


def test_outside_dev_the_console_talks_to_its_issuer_over_https_only(tmp_path: Path) -> None:
    plain = {"issuer": "http://idp.example", "jwks_url": "https://idp.example/jwks"}
    settings = Settings(
        data_dir=tmp_path,
        trusted_issuers=[plain],
        console={"oidc": {"issuer": "http://idp.example", "client_id": "c"}},
    )
    assert "console.oidc.issuer must be https:// outside --dev" in settings.insecurities()
