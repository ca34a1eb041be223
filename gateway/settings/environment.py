"""Environment variables that look like settings and are none, and settings
that have gone.

pydantic-settings reads only the variables that name a field and passes the
others over in silence, while a configuration file naming no field is
refused. So a misspelt ``SWITCHBOARD_REPLICA_STALE_SECOND``, or a setting
that has gone (``SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS``), would change
nothing and say nothing: the gateway names them in a warning at start.

A setting that has gone (`RETIRED`) is accepted for a while from any
source, with a warning saying what replaced it, so that an upgrade does not
fail on a configuration file written for the release before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "SWITCHBOARD_"
# Read by the gateway's programs themselves, not fields of its settings: the
# configuration file's path, the CLI client's gateway and token, the demo's
# examples directory, and the core check's mode (read by `adapters.core_check`,
# below the settings, in every process).
NOT_FIELDS = frozenset(
    {
        "SWITCHBOARD_CONFIG",
        "SWITCHBOARD_GATEWAY_URL",
        "SWITCHBOARD_TOKEN",
        "SWITCHBOARD_EXAMPLES",
        "SWITCHBOARD_CORE_CHECK",
    }
)


RETIRED = {
    "gateway_run_lease_seconds": "gateway-run tasks have no lease any more: they are taken "
    "over once their replica is gone (replica_stale_seconds)",
}


def retired_in(values: dict[str, Any]) -> list[str]:
    """Take the retired settings out of ``values`` (as given to the settings
    model); the warnings to give for them."""
    said = []
    for name, why in RETIRED.items():
        if values.pop(name, None) is not None:
            said.append(f"setting {name} is no longer used and is ignored: {why}")
    return said


def unknown_variables(fields: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The ``SWITCHBOARD_*`` variables in ``environ`` that set no field
    (``SWITCHBOARD_SECRETS__OPENAI`` sets the field ``secrets``), sorted."""
    names = {field.lower() for field in fields}
    unknown = []
    for variable in environ:
        if not variable.upper().startswith(PREFIX) or variable.upper() in NOT_FIELDS:
            continue
        if not environ[variable]:
            continue  # an empty variable is unset (`env_ignore_empty`)
        field = variable[len(PREFIX) :].split("__", 1)[0].lower()
        if field not in names:
            unknown.append(variable)
    return sorted(unknown)
