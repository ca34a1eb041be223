"""docs/configuration.md names every setting the gateway reads, so an
operator never has to read the source to learn one exists."""

from __future__ import annotations

from pathlib import Path

from gateway.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in text]
    assert missing == [], f"add these to docs/configuration.md: {missing}"
