"""`/ui/try` over real HTTP against a real gateway, with real a2a-sdk agents
and a real MCP server: a user's call goes through the door's own admission
and the core -- decided for them, audited under the trace id shown with the
answer -- and a call they may not make is refused as the door refuses it,
with nothing sent. Bad input is a 422 naming the field, nothing sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.console import dev_login
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  worker:
    require: [crm:read]
  held:
    approval: true
"""
TRACE = re.compile(r'id="trace">.*?([0-9a-f]{32})', re.S)


@dataclass
class World:
    gateway: Gateway
    worker: Recorder
    held: Recorder
    mcp: Recorder
    servers: list[ServerThread]


@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    worker_seen, held_seen = Recorder(), Recorder()
    worker = worker_agent(worker_seen)
    held = worker_agent(held_seen, name="Held")
    upstream, mcp_seen, _ = upstream_server()
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            for agent_id, server in (("worker", worker), ("held", held)):
                body = {"card_url": server.url + "/.well-known/agent-card.json", "id": agent_id}
                assert admin.post("/agents", json=body).status_code == 201
            calc: dict[str, object] = {"name": "Calc", "id": "calc", "prefix_tools": True}
            made = admin.post("/mcp-servers", json={**calc, "url": upstream.url + "/mcp"})
            assert made.status_code == 201, made.text
        yield World(gateway, worker_seen, held_seen, mcp_seen, [worker, held, upstream])
    finally:
        stop_all(gateway.server, worker, held, upstream)


def browser(gateway: Gateway) -> httpx.Client:
    return httpx.Client(
        base_url=gateway.url, timeout=60, follow_redirects=False, verify=client_tls()
    )


def trace_of(html: str) -> str:
    found = TRACE.search(html)
    assert found is not None, html[:3000]
    return found.group(1)


def audit(gateway: Gateway, trace_id: str) -> list[dict[str, object]]:
    with gateway.client(gateway.token("auditor", ADMIN_SCOPE)) as admin:
        answer = admin.get("/audit", params={"trace": trace_id})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        return items


def tool_calls(seen: Recorder) -> int:
    return sum(1 for s in seen.calls() if b'"tools/call"' in s.body)


def test_a_user_asks_an_agent_and_sees_the_answer_and_its_trace(world: World) -> None:
    gw = world.gateway
    with browser(gw) as ann, browser(gw) as root:
        csrf = dev_login(ann, "ann", "crm:read")
        root_csrf = dev_login(root, "root", f"{ADMIN_SCOPE} crm:read")
        # The agent's page links to the form, which the link fills in (a GET: nothing sent).
        assert "/ui/try?agent=worker&amp;skill=work" in ann.get("/ui/agents/worker").text
        form = ann.get("/ui/try", params={"agent": "worker", "skill": "work"})
        assert form.status_code == 200
        assert '<option value="work" selected>' in form.text
        assert world.worker.calls() == []

        ask = {"agent": "worker", "skill": "work", "message": "hello", "csrf": csrf}
        answered = ann.post("/ui/try/agent", data=ask)
        assert answered.status_code == 200, answered.text
        assert "echo: hello" in answered.text
        trace_id = trace_of(answered.text)
        assert f"/ui/audit/trace/{trace_id}" not in answered.text  # not an admin: text only
        records = audit(gw, trace_id)
        assert records and all(r["subject"] == "ann" for r in records)
        assert any(r["target"] == "worker" and r["decision"] == "allow" for r in records)
        assert len(world.worker.calls()) == 1

        # A task: its id, its state, its artifact; data goes as a data part.
        data = json.dumps({"sku": "X-100"})
        task = ann.post("/ui/try/agent", data={**ask, "message": "task build", "data": data})
        assert task.status_code == 200, task.text
        assert "TASK_STATE_COMPLETED" in task.text and "done: build" in task.text
        assert re.search(r'id="task">\s*<dt>Task</dt><dd><code>[0-9a-f-]{36}', task.text)
        assert b"X-100" in world.worker.calls()[-1].body

        # An admin gets the trace as a link, and it opens.
        mine = root.post("/ui/try/agent", data={**ask, "csrf": root_csrf})
        root_trace = trace_of(mine.text)
        assert f'href="/ui/audit/trace/{root_trace}"' in mine.text
        assert root.get(f"/ui/audit/trace/{root_trace}").status_code == 200


def test_a_user_without_the_scope_is_refused_as_the_door_refuses(world: World) -> None:
    gw = world.gateway
    with browser(gw) as bob:
        csrf = dev_login(bob, "bob", "sales:read")
        ask = {"agent": "worker", "message": "hello", "csrf": csrf}
        refused = bob.post("/ui/try/agent", data=ask)
        # The A2A door's own status and words for the same call.
        with httpx.Client(timeout=30, verify=client_tls()) as http:
            door = http.post(
                f"{gw.url}/a2a/worker",
                headers={"Authorization": f"Bearer {gw.token('bob', 'sales:read')}"},
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "m1",
                            "role": "ROLE_USER",
                            "parts": [{"text": "x"}],
                        }
                    },
                },
            )
        said = door.json()["error"]["message"]
        assert refused.status_code == 403, refused.text
        assert said.startswith("delegation refused") and said in refused.text.replace("&#39;", "'")
        assert world.worker.calls() == []
        with gw.client(gw.token("auditor", ADMIN_SCOPE)) as admin:
            denied = admin.get("/audit", params={"user": "bob", "decision": "deny"}).json()
        assert [r["target"] for r in denied["items"]] == ["worker", "worker"]  # console, door
        # The agent is not theirs to see: "not found", as the API says.
        assert bob.get("/ui/try", params={"agent": "worker"}).status_code == 404


def test_a_held_call_waits_for_approval(world: World) -> None:
    with browser(world.gateway) as ann:
        csrf = dev_login(ann, "ann", "crm:read")
        held = ann.post("/ui/try/agent", data={"agent": "held", "message": "hi", "csrf": csrf})
        assert held.status_code == 200, held.text
        assert "Waiting for approval" in held.text
        found = re.search(r'href="(/ui/approvals/(apr_[A-Za-z0-9_-]+))"', held.text)
        assert found is not None, held.text
        assert ann.get(found.group(1)).status_code == 200  # their own approval
        assert world.held.calls() == []


def test_a_user_calls_an_mcp_tool_with_arguments(world: World) -> None:
    gw = world.gateway
    with browser(gw) as ann:
        csrf = dev_login(ann, "ann", "crm:read")
        assert "/ui/try?tool=calc__add" in ann.get("/ui/mcp/calc").text
        form = ann.get("/ui/try", params={"tool": "calc__add"})
        assert form.status_code == 200 and "&#34;a&#34;" in form.text  # the schema
        call = {"tool": "calc__add", "arguments": '{"a": 2, "b": 3}', "csrf": csrf}
        answered = ann.post("/ui/try/tool", data=call)
        assert answered.status_code == 200, answered.text
        assert '<p class="part part-text">5</p>' in answered.text
        records = audit(gw, trace_of(answered.text))
        assert any(r["subject"] == "ann" and r["target"] == "calc" for r in records)
        assert tool_calls(world.mcp) == 1

        for arguments, said in (
            ("{a: 2}", "arguments: not JSON"),
            ("[1, 2]", "arguments: a JSON object"),
            ('{"a": NaN}', "arguments: not JSON"),
            ('{"a": ' * 30 + "1" + "}" * 30, "arguments: nested deeper"),
            (json.dumps({"a": "x" * 70_000}), "arguments: larger than"),
        ):
            refused = ann.post("/ui/try/tool", data={**call, "arguments": arguments})
            assert refused.status_code == 422, arguments
            assert said in refused.text, refused.text
        no_csrf = ann.post("/ui/try/tool", data={k: v for k, v in call.items() if k != "csrf"})
        assert no_csrf.status_code == 403
        unknown = ann.post("/ui/try/tool", data={**call, "tool": "calc__nope"})
        assert unknown.status_code == 404 and "No such federated tool" in unknown.text
        assert ann.get("/ui/try", params={"tool": "calc__nope"}).status_code == 404
        assert tool_calls(world.mcp) == 1


def test_bad_input_to_an_agent_is_refused_and_nothing_sent(world: World) -> None:
    with browser(world.gateway) as ann:
        csrf = dev_login(ann, "ann", "crm:read")
        ask = {"agent": "worker", "message": "hello", "csrf": csrf}
        for change, status, said in (
            ({"data": "{nope"}, 422, "data: not JSON"),
            ({"data": '"text"'}, 422, "data: a JSON object"),
            # Numbers a message's data (a protobuf Value, a double) cannot hold.
            ({"data": '{"a": 1e999}'}, 422, "data: not JSON"),
            ({"data": '{"a": ' + "9" * 401 + "}"}, 422, "data: not JSON"),
            ({"data": '{"a": 9007199254740993}'}, 422, "data: not JSON"),
            ({"message": "x" * 16_001}, 422, "message: longer than"),
            ({"message": ""}, 422, "message: give a message"),
            ({"agent": ""}, 422, "agent: which agent"),
            ({"skill": "no-such-skill"}, 422, "skill:"),
            ({"agent": "nobody"}, 404, "No such agent"),
            ({"csrf": "forged"}, 403, "CSRF"),
        ):
            refused = ann.post("/ui/try/agent", data={**ask, **change})
            assert refused.status_code == status, (change, refused.text)
            assert said in refused.text, refused.text
        assert world.worker.calls() == []


def test_an_agent_that_is_down_is_said_clearly(tmp_path: Path, world: World) -> None:
    gone = worker_agent(name="Gone")
    gw = world.gateway
    with gw.client(gw.token("admin", ADMIN_SCOPE)) as admin:
        body = {"card_url": gone.url + "/.well-known/agent-card.json", "id": "gone"}
        assert admin.post("/agents", json=body).status_code == 201
    gone.stop()
    with browser(gw) as ann:
        csrf = dev_login(ann, "ann", "crm:read")
        down = ann.post("/ui/try/agent", data={"agent": "gone", "message": "hi", "csrf": csrf})
        assert down.status_code == 502, down.text
        assert "could not be reached" in down.text


def test_the_mcp_endpoints_own_scopes_hold_in_the_playground(
    tmp_path: Path, database_url: str | None
) -> None:
    """`mcp_required_scopes` is asked of every caller of `/mcp`: a user
    without them is refused there, and so in the playground, before any call."""
    upstream, seen, _ = upstream_server()
    gw = start_gateway(tmp_path / "data", database_url, mcp_required_scopes=["mcp:use"])
    try:
        with gw.client(gw.token("admin", ADMIN_SCOPE)) as admin:
            calc = {"name": "Calc", "id": "calc", "url": upstream.url + "/mcp"}
            assert admin.post("/mcp-servers", json=calc).status_code == 201
        with browser(gw) as bob, browser(gw) as carol:
            bob_csrf = dev_login(bob, "bob", "crm:read")
            carol_csrf = dev_login(carol, "carol", "crm:read mcp:use")
            call = {"tool": "calc__add", "arguments": '{"a": 2, "b": 3}'}
            assert "calc__add" not in bob.get("/ui/try").text
            refused = bob.post("/ui/try/tool", data={**call, "csrf": bob_csrf})
            assert refused.status_code == 403 and "mcp:use" in refused.text, refused.text
            assert tool_calls(seen) == 0
            made = carol.post("/ui/try/tool", data={**call, "csrf": carol_csrf})
            assert made.status_code == 200 and '<p class="part part-text">5</p>' in made.text
            assert tool_calls(seen) == 1
    finally:
        stop_all(gw.server, upstream)
