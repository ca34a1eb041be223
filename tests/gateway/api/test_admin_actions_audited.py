"""Every change an admin makes through the API is audited -- the console acts
through the same functions, so its actions are too.

Two checks: one reads the API's source and finds every admin route that
changes something (POST, PUT, PATCH, DELETE with an `AdminPrincipal`) and
fails unless it records what it did (`audited`, or a record of its own); one
makes the changes over real HTTP and finds each in `GET /audit`, with the
admin as its subject, and no record for a change refused."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agents import v03_card
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.mcp_servers import upstream_server

API = Path(__file__).resolve().parents[3] / "gateway" / "api"
CHANGING = {"post", "put", "patch", "delete"}
# Admin routes whose record is written below the API, by the piece that does
# the change (named so that a reader can check it), or that change nothing.
RECORDED_BELOW = {
    # `ApprovalDesk.decide` -> `audit_decision`: the decision's own record.
    ("approvals.py", "decide_approval"),
    # `Coordination.release` records the release with the rule and the key.
    ("coordination.py", "release_hold"),
    # Read what would happen; nothing changes.
    ("policies.py", "explain"),
    ("policy_edits.py", "check_policy"),
    ("policy_whatif.py", "whatif"),  # recorded decisions replayed, read-only
    # Its body is read here and handed to `register_document`, which records.
    ("flows.py", "register_flow"),
}
RECORDERS = {"audited", "record_event"}


def _admin_changes() -> Iterator[tuple[str, str, ast.AsyncFunctionDef]]:
    for path in sorted(API.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if not isinstance(node, ast.AsyncFunctionDef):
                continue
            methods = {
                d.func.attr
                for d in node.decorator_list
                if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
            }
            admin = any(
                isinstance(a.annotation, ast.Name) and a.annotation.id == "AdminPrincipal"
                for a in node.args.args
            )
            if admin and methods & CHANGING:
                yield path.name, node.name, node


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_every_admin_change_records_itself() -> None:
    found = list(_admin_changes())
    assert len(found) >= 15, "the checker finds the API's admin routes"
    silent = [
        f"{module}:{name}"
        for module, name, node in found
        if (module, name) not in RECORDED_BELOW and not _calls(node) & RECORDERS
    ]
    assert silent == [], f"admin routes that change something and record nothing: {silent}"


def test_the_checker_sees_a_silent_route() -> None:
    source = (
        "@router.delete('/{x}')\n"
        "async def remove(request: Request, x: str, admin: AdminPrincipal) -> None:\n"
        "    await state.store.delete(x)\n"
    )
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.AsyncFunctionDef)
    assert not _calls(node) & RECORDERS


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return make_gateway(database_url)


def test_an_admins_changes_are_in_the_audit(gateway: Gateway) -> None:
    server, _, _ = upstream_server()
    try:
        with gateway.client(gateway.token("ann", "switchboard:admin")) as ann:
            agent = ann.post("/agents", json={"card": v03_card("https://crm.example.com")})
            assert agent.status_code == 201, agent.text
            agent_id = agent.json()["id"]
            assert ann.post(f"/agents/{agent_id}/credentials").status_code == 201
            assert ann.delete(f"/agents/{agent_id}/credentials").status_code == 204
            mcp = ann.post("/mcp-servers", json={"name": "Tools", "url": server.url + "/mcp"})
            assert mcp.status_code == 201, mcp.text
            server_id = mcp.json()["id"]
            assert ann.post(f"/mcp-servers/{server_id}/refresh").status_code == 200
            assert ann.delete(f"/mcp-servers/{server_id}").status_code == 204
            assert ann.delete(f"/agents/{agent_id}").status_code == 204
            # Refused changes are not changes: nothing recorded for them.
            assert ann.delete("/agents/no-such-agent").status_code == 404
            with gateway.client(gateway.token("bob", "crm:read")) as bob:
                assert bob.delete(f"/agents/{agent_id}").status_code == 403
            # Every change anyone made, by anyone: bob's refused one is not there.
            records = ann.get("/audit", params={"kind": "change", "limit": 100}).json()["items"]
    finally:
        server.stop()
    done = [(r["event"], r["target"]) for r in records]
    expected = [
        ("agent.registered", agent_id),
        ("agent.credential_issued", agent_id),
        ("agent.credential_revoked", agent_id),
        ("mcp_server.registered", server_id),
        ("mcp_server.refreshed", server_id),
        ("mcp_server.removed", server_id),
        ("agent.removed", agent_id),
    ]
    assert sorted(done) == sorted(expected)  # once each; nothing for the refused ones
    assert {r["subject"] for r in records} == {"ann"}
    assert {r["decision"] for r in records} == {"allow"}
