"""`bench.tool_search`'s bound on what a lexical ranker can find: a query
counts as unreachable only if it shares no indexed term with any of its
right tools (name, description or parameters)."""

from __future__ import annotations

from typing import Any

from bench.tool_search import unreachable


def tool(name: str, description: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": {"properties": params}}


TOOLS = [
    tool("iot__thermostat_setpoint", "Set a room's target temperature.", {}),
    tool("maps__directions", "Route between two places.", {"mode": {"description": "by train"}}),
]


def test_a_query_sharing_no_term_with_its_tools_is_unreachable() -> None:
    assert (
        unreachable(TOOLS, [("make the meeting room warmer", ("iot__thermostat_setpoint",))]) == 0
    )
    assert unreachable(TOOLS, [("make it warmer", ("iot__thermostat_setpoint",))]) == 1


def test_names_parameters_and_any_right_tool_count() -> None:
    queries = [
        ("thermostats please", ("iot__thermostat_setpoint",)),  # its name, stemmed
        ("go there by trains", ("maps__directions",)),  # a parameter's description
        ("warmer", ("maps__directions", "iot__thermostat_setpoint")),
    ]
    assert unreachable(TOOLS, queries) == 1
