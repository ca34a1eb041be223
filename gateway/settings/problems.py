"""Settings errors as a person reads them: one line per bad setting, saying
which, why, and where it can be set (`Settings.load` raises them as
`ConfigError`; the CLI prints them)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

# Settings whose values are never echoed back in an error.
_SENSITIVE = (
    "secret",
    "key",
    "token",
    "password",
    "credential",
    "headers",
    "database_url",
    "redis_url",
)
# Settings `switchboard serve` also takes as flags.
_FLAGS = {"port": "--port", "host": "--host", "dev": "--dev", "data_dir": "--data-dir"}


def settings_problems(exc: ValidationError, config_file: Path | None) -> str:
    """One line per bad setting: which, why, where it can come from."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            where = f" in {config_file}" if config_file else ""
            lines.append(f"unknown setting {name!r}{where} (docs/configuration.md lists them)")
            continue
        given = ""
        if not any(word in name for word in _SENSITIVE) and "input" in error:
            given = f" (given {str(error['input'])[:60]!r})"
        top = str(error["loc"][0]) if error["loc"] else name
        flag = f"{_FLAGS[top]}, " if top in _FLAGS else ""
        sources = f"{flag}SWITCHBOARD_{top.upper()}" + (
            f" or {config_file}" if config_file else " or the config file"
        )
        lines.append(f"setting {name!r}: {error['msg']}{given}; set by {sources}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def source_problem(exc: SettingsError) -> str:
    """pydantic-settings names the field and source but not the variable."""
    match = re.search(r'field "([^"]+)" from source "(\w+)"', str(exc))
    if match is None:
        return f"invalid settings: {exc}"
    field, source = match.groups()
    if source == "EnvSettingsSource":
        return (
            f"SWITCHBOARD_{field.upper()}: not a valid value for {field!r} "
            "(structured settings are JSON, e.g. "
            'SWITCHBOARD_TRUSTED_ISSUERS=\'[{"issuer": "https://...", "jwks_url": "https://..."}]\')'
        )
    return f"setting {field!r} from {source}: not a valid value"
