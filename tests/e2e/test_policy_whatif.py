"""A candidate policy tried on recorded traffic, over real HTTP on both
databases: calls made under policy A, a what-if with candidate B, then B
saved and the same calls made again -- the what-if's prediction for each
decision is what B then decides (issue 56, "Done when"). Also: admin only,
a bad candidate refused like a save and nothing changed, an empty window,
decisions that depended on a rate limit counted as not replayable, a
removed target named, the CLI adding pages up."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.inspecting import agent_card, inspecting_agent
from tests.support.servers import ServerThread

POLICY_A = """\
agents:
  sales:
    grant: [sales:read, sales:write]
    skills:
      refund:
        require: [sales:write]
"""
# Upsell now needs sales:admin; a refund needs a human; write is no longer passed on.
POLICY_B = """\
agents:
  sales:
    grant: [sales:read]
    skills:
      refund:
        approval: true
      upsell:
        require: [sales:admin]
"""
# (user, scopes, skill): the same calls under A, then under B.
CALLS = [
    ("alice", "sales:read sales:write", "upsell"),  # A allow [read write]; B deny
    ("bob", "sales:read sales:admin", "upsell"),  # A allow [read];       B allow [read]
    ("alice", "sales:read sales:write", "refund"),  # A allow [read write]; B hold
    ("carol", "sales:read", "refund"),  # A deny;               B hold
    ("dave", "", "upsell"),  # A allow [];           B deny
]


@pytest.fixture
def sales() -> Iterator[ServerThread]:
    card = [{"id": "upsell"}, {"id": "refund"}]
    server, _ = inspecting_agent(lambda url: agent_card("Sales", url, card))
    yield server
    server.stop()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def send(gateway: Gateway, user: str, scopes: str, skill: str) -> int:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": message, "metadata": {"skill": skill}},
    }
    headers = {"Authorization": f"Bearer {gateway.token(user, scopes)}", "A2A-Version": "1.0"}
    answer = httpx.post(
        f"{gateway.url}/a2a/sales", json=body, headers=headers, timeout=30, verify=client_tls()
    )
    assert answer.status_code < 500, answer.text
    return answer.status_code


def save(gateway: Gateway, document: str) -> None:
    with gateway.client() as admin:
        base = admin.get("/policies").json()["digest"]
        saved = admin.put("/policies", json={"document": document, "base_digest": base})
    assert saved.status_code == 200, saved.text


def setup(make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread) -> Gateway:
    gateway = make_gateway(database_url)
    with gateway.client() as admin:
        added = admin.post("/agents", json={"card_url": sales.url, "id": "sales"})
    assert added.status_code == 201, added.text
    save(gateway, POLICY_A)
    return gateway


def whatif(gateway: Gateway, document: str, **fields: Any) -> dict[str, Any]:
    with gateway.client() as admin:
        answer = admin.post("/policies/whatif", json={"document": document, **fields})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def decisions_after(gateway: Gateway, after_id: int) -> list[tuple[int, dict[str, Any]]]:
    """Each decision recorded for sales after ``after_id``, oldest first, as
    the record says it (read from `GET /audit`, not from the what-if)."""
    with gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "sales", "after_id": after_id}).json()
    said = []
    for record in items["items"]:
        if record["outcome"] == "approval_required":
            said.append((record["id"], {"decision": "hold", "scopes": []}))
        elif record["decision"] == "allow":
            said.append((record["id"], {"decision": "allow", "scopes": record["scopes_granted"]}))
        else:
            said.append((record["id"], {"decision": "deny", "scopes": []}))
    return said


def last_id(gateway: Gateway) -> int:
    with gateway.client() as admin:
        items = admin.get("/audit", params={"kind": "all", "limit": 1}).json()["items"]
    return int(items[0]["id"]) if items else 0


def test_the_whatif_predicts_each_decision_the_saved_candidate_makes(
    make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread
) -> None:
    gateway = setup(make_gateway, database_url, sales)
    start = last_id(gateway)
    statuses_a = [send(gateway, *call) for call in CALLS]
    assert statuses_a[3] == 403  # carol lacks sales:write under A
    under_a = decisions_after(gateway, start)
    assert [d["decision"] for _, d in under_a] == ["allow", "allow", "allow", "deny", "allow"]

    predicted = whatif(gateway, POLICY_B, each=True)
    assert predicted["decisions"] == predicted["replayed"] == len(CALLS)
    assert predicted["changed"] == 4 and predicted["unreplayable"] == []
    assert predicted["summary"].endswith(", 4 would change")
    assert predicted["digest"] == digest(POLICY_B)
    by_id = {each["id"]: each for each in predicted["each"]}
    assert [by_id[i]["before"] for i, _ in under_a] == [d for _, d in under_a]
    # Grouped by principal, target, action, before -> after, with the records.
    groups = {(g["principal"], g["action"]): g for g in predicted["changes"]}
    assert groups[("alice", "upsell")]["before"] == {
        "decision": "allow",
        "scopes": ["sales:read", "sales:write"],
    }
    assert groups[("alice", "upsell")]["after"] == {"decision": "deny", "scopes": []}
    assert groups[("carol", "refund")]["after"]["decision"] == "hold"
    assert groups[("alice", "upsell")]["examples"][0]["id"] == under_a[0][0]
    assert ("bob", "upsell") not in groups
    # Read-only: the policy in force is still A, no version was added.
    with gateway.client() as admin:
        assert admin.get("/policies").json()["digest"] == digest(POLICY_A)
        assert len(admin.get("/policies/versions").json()["items"]) == 1

    save(gateway, POLICY_B)
    start = last_id(gateway)
    for call in CALLS:
        send(gateway, *call)
    under_b = decisions_after(gateway, start)
    assert len(under_b) == len(CALLS)
    # Decision by decision: what the what-if said B would decide is what B decided.
    assert [by_id[i]["after"] for i, _ in under_a] == [d for _, d in under_b]


def test_only_an_admin_may_ask_and_a_bad_candidate_is_refused_with_its_line(
    make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread
) -> None:
    gateway = setup(make_gateway, database_url, sales)
    send(gateway, *CALLS[0])
    before = last_id(gateway)
    body = {"document": POLICY_B}
    with gateway.client(admin=False) as user:
        assert user.post("/policies/whatif", json=body).status_code == 403
    with gateway.anonymous() as nobody:
        assert nobody.post("/policies/whatif", json=body).status_code == 401
    bad = "agents:\n  sales:\n    allow: maybe\n"
    with gateway.client() as admin:
        refused = admin.post("/policies/whatif", json={"document": bad})
        assert refused.status_code == 422
        problem = refused.json()
        assert problem["type"].endswith("invalid-policy")
        assert problem["errors"][0]["line"] == 3
        assert "agents.sales.allow" in problem["errors"][0]["message"]
        # The same refusal a save gives.
        saved = admin.put("/policies", json={"document": bad, "base_digest": digest(POLICY_A)})
        assert saved.json()["errors"] == problem["errors"]
        for odd in (
            {"limit": 0},
            {"limit": True},
            {"limit": "5"},
            {"each": 1},
            {"cursor": "1.2.3"},
            {"cursor": "9999999999999999999.1"},
        ):
            refused = admin.post("/policies/whatif", json={"document": POLICY_B, **odd})
            assert refused.status_code == 422, odd
        backwards = {"document": POLICY_B, "since": "2026-01-02T00:00:00Z"}
        backwards["until"] = "2026-01-01T00:00:00Z"
        assert admin.post("/policies/whatif", json=backwards).status_code == 422
        assert admin.get("/policies").json()["digest"] == digest(POLICY_A)
    # Nothing stored: no audit record, no version.
    assert last_id(gateway) == before


def test_an_empty_window_and_what_cannot_be_replayed(
    make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread
) -> None:
    gateway = setup(make_gateway, database_url, sales)
    send(gateway, *CALLS[0])
    past = {"since": "2020-01-01T00:00:00Z", "until": "2020-01-08T00:00:00Z"}
    empty = whatif(gateway, POLICY_B, **past)
    assert (empty["decisions"], empty["changed"], empty["total"]) == (0, 0, 0)
    assert empty["next_cursor"] is None and empty["changes"] == []
    assert empty["summary"] == "of the 0 decisions since 2020-01-01T00:00:00+00:00, 0 would change"
    # An until at the beginning of time: the window starts there, not a 500.
    first = whatif(gateway, POLICY_B, until="0001-01-02T00:00:00Z")
    assert (first["decisions"], first["since"]) == (0, "0001-01-01T00:00:00+00:00")

    limited = POLICY_A + "limits:\n  - name: one-a-minute\n    rate: 1/minute\n    per: [user]\n"
    save(gateway, limited)
    send(gateway, "erin", "sales:read", "upsell")
    assert send(gateway, "erin", "sales:read", "upsell") == 429
    found = whatif(gateway, limited)
    [unknown] = found["unreplayable"]
    assert unknown["count"] == 1 and "rate limit" in unknown["reason"]
    # The allowed calls the candidate's limit would count are named, not guessed.
    assert found["subject_to"] == [{"rule": "rate limit one-a-minute", "count": 2}]
    assert found["decisions"] == 3 and found["replayed"] == 2 and found["changed"] == 0

    with gateway.client() as admin:
        assert admin.delete("/agents/sales").status_code == 204
    gone = whatif(gateway, POLICY_B)
    reasons = {u["reason"]: u["count"] for u in gone["unreplayable"]}
    assert reasons[next(r for r in reasons if "no longer registered" in r)] == 2
    assert gone["replayed"] == 0


def test_the_cli_adds_the_pages_up(
    make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread, tmp_path: Path
) -> None:
    gateway = setup(make_gateway, database_url, sales)
    for call in CALLS:
        send(gateway, *call)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(POLICY_B)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    command = [sys.executable, "-m", "gateway", "policy", "whatif", str(candidate)]
    command += ["--since", since, "--page", "2", "--gateway", gateway.url]
    command += ["--token", gateway.token("admin", "switchboard:admin")]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["decisions"], result["changed"]) == (len(CALLS), 4)
    assert "replayed 2 of" in done.stderr  # progress, page by page
    assert sum(g["count"] for g in result["changes"]) == 4
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert ", 4 would change" in shown.stdout
    assert "alice -> sales skill upsell: allow [sales:read sales:write] -> deny" in shown.stdout
    candidate.write_text("agents: [\n")
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "HTTP 422" in refused.stderr
    assert "line " in refused.stderr


def test_the_consoles_check_shows_what_would_change(
    make_gateway: GatewayFactory, database_url: str | None, sales: ServerThread
) -> None:
    gateway = setup(make_gateway, database_url, sales)
    send(gateway, *CALLS[0])
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as ann:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        form = {"csrf": csrf, "document": POLICY_B, "base_digest": digest(POLICY_A)}
        checked = ann.post("/ui/policy/check", data=form)
        assert checked.status_code == 200
        assert 'id="whatif"' in checked.text and ", 1 would change" in checked.text
        trace = whatif(gateway, POLICY_B)["changes"][0]["examples"][0]["trace_id"]
        assert f'href="/ui/audit/trace/{trace}"' in checked.text
        assert ann.get(f"/ui/audit/trace/{trace}").status_code == 200
        # A bad text: its problems, and no what-if.
        bad = ann.post("/ui/policy/check", data={**form, "document": "agents: [\n"})
        assert "not valid" in bad.text and 'id="whatif"' not in bad.text
    with gateway.client() as admin:
        assert admin.get("/policies").json()["digest"] == digest(POLICY_A)
