"""The delegation tree the demo prints, from audit records."""

from __future__ import annotations

from typing import Any

from gateway.demo.tree import build, render


def record(n: int, actors: list[str], target: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": n,
        "time": f"2026-11-21T10:00:0{n}Z",
        "subject": "dana",
        "actors": actors,
        "target": target,
        "event": "a2a.SendMessage",
        "decision": "allow",
        "outcome": "ok",
        "scopes_granted": ["sales:quote"],
        "reasons": ["allowed by defaults"],
        **extra,
    }


RECORDS = [
    # newest first, as GET /audit answers
    record(
        4,
        ["app", "support", "sales"],
        "inventory",
        event="mcp",
        action="reserve_stock",
        decision="deny",
        outcome="denied",
        scopes_granted=[],
        reasons=["inventory tool reserve_stock requires inventory:write, which the user lacks"],
    ),
    record(3, ["app", "support", "sales"], "inventory", event="mcp", action="check_stock"),
    record(2, ["app", "support"], "sales", event="token_exchange"),
    record(1, ["app"], "support"),
]


def test_hops_nest_by_actor_chain_and_keep_their_records_in_order() -> None:
    root = build(RECORDS)
    (support,) = root.children.values()
    (sales,) = support.children.values()
    (inventory,) = sales.children.values()
    assert inventory.path == ("support", "sales", "inventory")
    assert [r["action"] for r in inventory.records] == ["check_stock", "reserve_stock"]
    assert [r["event"] for r in sales.records] == ["token_exchange"]


def test_render_shows_chain_scopes_and_reasons_at_every_hop() -> None:
    lines = render(RECORDS)
    text = "\n".join(lines)
    assert lines[0] == "dana"
    assert lines[1] == "└── support"
    assert "chain:   dana (via app) -> support -> sales -> inventory" in text
    assert "mcp reserve_stock: DENY" in text
    assert "why:     inventory tool reserve_stock requires inventory:write" in text
    assert "granted: sales:quote" in text
    # a denial grants nothing, so no "granted" line follows it
    deny_at = next(i for i, line in enumerate(lines) if "reserve_stock: DENY" in line)
    assert "granted" not in " ".join(lines[deny_at : deny_at + 3])
    # the vertical bar continues from a hop's records down to its children
    sales_at = next(i for i, line in enumerate(lines) if line.endswith("└── sales"))
    assert lines[sales_at + 1].startswith("        │   token_exchange")


def test_render_without_records() -> None:
    assert render([]) == ["(no records)"]
