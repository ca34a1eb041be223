"""Environment variables that look like settings and are none.

pydantic-settings reads only the variables that name a field and passes the
others over in silence, while a configuration file naming no field is
refused. So a misspelt ``SWITCHBOARD_REPLICA_STALE_SECOND``, or a setting
that has gone (``SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS``), would change
nothing and say nothing: the gateway names them in a warning at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PREFIX = "SWITCHBOARD_"
# Read by the gateway's programs themselves, not fields of its settings: the
# configuration file's path, the CLI client's gateway and token, the demo's
# examples directory.
NOT_FIELDS = frozenset(
    {"SWITCHBOARD_CONFIG", "SWITCHBOARD_GATEWAY_URL", "SWITCHBOARD_TOKEN", "SWITCHBOARD_EXAMPLES"}
)


def unknown_variables(fields: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The ``SWITCHBOARD_*`` variables in ``environ`` that set no field
    (``SWITCHBOARD_SECRETS__OPENAI`` sets the field ``secrets``), sorted."""
    names = {field.lower() for field in fields}
    unknown = []
    for variable in environ:
        if not variable.upper().startswith(PREFIX) or variable.upper() in NOT_FIELDS:
            continue
        field = variable[len(PREFIX) :].split("__", 1)[0].lower()
        if field not in names:
            unknown.append(variable)
    return sorted(unknown)
