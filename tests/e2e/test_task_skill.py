"""A message continues the skill of the task it continues (issue 15, the siblings).

An agent continues a task's own skill, whatever the next message names. The
attacks: the caller owns a task of `adminop` (a `require` or an `approval`)
and continues it while naming `read` -- decided as `read`, run as `adminop`
-- or continues it with a narrower token. And three more ways round the one
skill decision: a part's `metadata.skill`, a message naming no skill to an
agent whose skills have handoff contracts, and two task ids in one message.
Each is sent on every binding and version a caller can speak, to agents of
every dialect, through the approval path, `/mcp`'s agent tools and a
gateway-run webhook agent.

Real HTTP on 127.0.0.1, official-SDK agents that record what they received;
one deployment (SQLite) for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, Seen
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all
from tests.support.skill_agents import Hook, Kind, hook_server, skill_agent, upstream_skills
from tests.support.skill_requests import (
    ABSENT,
    DIALECTS,
    Outcome,
    Sent,
    approved_and_finished,
    outcome,
    request,
)

POLICY = """\
agents:
  ops:
    skills:
      adminop: {require: [ops:admin]}
  ops-rest:
    skills:
      adminop: {require: [ops:admin]}
  ops-legacy:
    skills:
      adminop: {require: [ops:admin]}
  held-ops:
    skills:
      adminop: {approval: true}
  held-contracted:
    skills:
      adminop: {approval: true}
  hook:
    skills:
      adminop: {require: [ops:admin]}
"""
AGENTS: dict[str, Kind] = {"ops": "jsonrpc", "ops-rest": "rest", "ops-legacy": "legacy"}
# Agents whose `adminop` has a handoff contract.
CONTRACTED: dict[str, Kind] = {
    "contracted": "jsonrpc",
    "contracted-rest": "rest",
    "held-contracted": "jsonrpc",
}
CONTRACT = {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}
# who -> (subject, scopes): root-narrow is root with a token lacking ops:admin.
CALLERS = {"mallory": ("mallory", ""), "root": ("root", "ops:admin"), "root-narrow": ("root", "")}


@dataclass
class Setup:
    gateway: Gateway
    tokens: dict[str, str]
    seen: dict[str, Recorder]
    hook: Hook
    servers: list[ServerThread]

    def post(self, caller: str, agent: str, sent: Sent) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}", **sent.headers}
        with httpx.Client(
            base_url=self.gateway.url, headers=headers, timeout=30, verify=client_tls()
        ) as http:
            return http.post(f"/a2a/{agent}{sent.path}", json=sent.body)

    def send(self, caller: str, agent: str, sent: Sent) -> Outcome:
        return outcome(sent, self.post(caller, agent, sent))

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.tokens["admin"])

    def calls(self, agent: str) -> list[Seen]:
        return self.seen[agent].calls()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("task-skill")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp / "data", None, policy_file=policy)
    kinds: dict[str, Kind] = {**AGENTS, "held-ops": "jsonrpc", **CONTRACTED}
    seen = {agent: Recorder() for agent in kinds}
    servers = [skill_agent(kind, seen[agent], agent) for agent, kind in kinds.items()]
    hook = hook_server()
    tokens = {who: gateway.token(sub, scopes) for who, (sub, scopes) in CALLERS.items()}
    tokens["admin"] = gateway.token("admin", "switchboard:admin")
    try:
        with gateway.client(tokens["admin"]) as admin:
            for agent, server in zip(kinds, servers, strict=True):
                registration: dict[str, Any] = {
                    "card_url": server.url + "/.well-known/agent-card.json",
                    "id": agent,
                }
                if agent in CONTRACTED:
                    registration["skill_contracts"] = {"adminop": CONTRACT}
                answer = admin.post("/agents", json=registration)
                assert answer.status_code == 201, answer.text
            webhook = {
                "id": "hook",
                "name": "Hook",
                "upstream": {"type": "rest", "url": hook.server.url + "/hook"},
                "skills": [{"id": "read", "name": "Read"}, {"id": "adminop", "name": "Admin"}],
                "api_key": "hook-key",
                "api_key_header": "X-Api-Key",
            }
            answer = admin.post("/vendor-agents", json=webhook)
            assert answer.status_code == 201, answer.text
        yield Setup(gateway, tokens, seen, hook, servers)
    finally:
        stop_all(gateway.server, hook.server, *servers)


def _refusals(setup: Setup, agent: str, subject: str) -> list[dict[str, Any]]:
    with setup.admin() as admin:
        params: dict[str, str | int] = {"agent": agent, "decision": "deny", "limit": 500}
        items = admin.get("/audit", params=params).json()["items"]
    return [r for r in items if r["outcome"] == "invalid_request" and r["subject"] == subject]


def _start(setup: Setup, caller: str, agent: str, dialect: str, skill: Any) -> str:
    """A task of ``skill`` that waits for input; its id."""
    started = setup.send(caller, agent, request(dialect, skill, text="ask"))
    assert started.kind == "waiting" and started.task_id, started
    return started.task_id


# A continuation is for the task's skill ----------------------------------------------


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_continuing_a_task_while_naming_another_skill_is_refused(
    setup: Setup, dialect: str, agent: str
) -> None:
    """Root's own `adminop` task, continued naming `read` in any place: the
    agent would continue `adminop` under a decision made for `read`."""
    task = _start(setup, "root", agent, dialect, "adminop")
    calls = len(setup.calls(agent))
    before = len(_refusals(setup, agent, "root"))
    placements = [
        ("read", ABSENT, ABSENT),
        (ABSENT, "read", ABSENT),
        (ABSENT, ABSENT, "read"),  # a part's metadata
        ("adminop", "read", ABSENT),
        (None, ABSENT, ABSENT),
    ]
    for request_skill, message_skill, part_skill in placements:
        sent = request(
            dialect, request_skill, message_skill, part_skill=part_skill, task_id=task, text="go"
        )
        got = setup.send("root", agent, sent)
        assert got.kind == "invalid", got
        assert f"task {task} is a task of skill 'adminop'" in got.message, got
    assert len(setup.calls(agent)) == calls, "a refused continuation reached the agent"
    assert len(_refusals(setup, agent, "root")) == before + len(placements)
    # Naming none: decided, and named upstream, as the task's skill.
    got = setup.send("root", agent, request(dialect, task_id=task, text="go"))
    assert got.kind == "ok", got
    assert "continued adminop (message says adminop, request says adminop)" in got.text, got
    (call,) = setup.calls(agent)[calls:]
    assert upstream_skills(call) == {
        "params.metadata": "adminop",
        "params.message.metadata": "adminop",
    }


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_narrower_token_cannot_continue_a_task_past_its_skills_require(
    setup: Setup, dialect: str
) -> None:
    task = _start(setup, "root", "ops", dialect, "adminop")
    calls = len(setup.calls("ops"))
    # Root again, with a token lacking ops:admin: naming `read` got it through.
    sent = request(dialect, "read", task_id=task, text="go")
    assert setup.send("root-narrow", "ops", sent).kind == "invalid"
    # Naming none (or adminop), it is decided as adminop: refused by its require.
    for named in (ABSENT, "adminop"):
        sent = request(dialect, named, task_id=task, text="go")
        assert setup.send("root-narrow", "ops", sent).kind == "denied"
    assert len(setup.calls("ops")) == calls
    # With the scope, it continues.
    got = setup.send("root", "ops", request(dialect, task_id=task, text="go"))
    assert got.kind == "ok" and "continued adminop" in got.text, got


def test_a_task_started_naming_no_skill_is_continued_as_for_the_strictest(setup: Setup) -> None:
    """Started naming none, the agent picked; the gateway does not know which,
    so a message continuing it is decided as for the strictest skill, whatever
    it names."""
    dialect = "jsonrpc-1.0"
    task = _start(setup, "root", "ops", dialect, ABSENT)
    calls = len(setup.calls("ops"))
    for named in ("read", ABSENT):
        sent = request(dialect, named, task_id=task, text="go")
        assert setup.send("root-narrow", "ops", sent).kind == "denied"
    assert len(setup.calls("ops")) == calls
    got = setup.send("root", "ops", request(dialect, "read", task_id=task, text="go"))
    assert got.kind == "ok" and "continued -" in got.text, got


def test_someone_elses_task_is_not_found_whatever_skill_is_named(setup: Setup) -> None:
    """No "is a task of skill" for a task that is not the caller's: that
    would say the task exists, and what it is for."""
    task = _start(setup, "root", "ops", "jsonrpc-1.0", "adminop")
    calls = len(setup.calls("ops"))
    for named in ("read", ABSENT):
        sent = request("jsonrpc-1.0", named, task_id=task, text="go")
        answer = setup.post("mallory", "ops", sent)
        body = answer.json()
        if answer.status_code == 403:  # decided as adminop: mallory may not
            continue
        assert body["error"]["code"] == -32001, body
        assert "skill" not in body["error"]["message"]
    assert len(setup.calls("ops")) == calls


@pytest.mark.parametrize("second", ["task", "", None])
def test_two_task_ids_in_one_message_are_refused(setup: Setup, second: str | None) -> None:
    """`taskId` and `task_id` (protobuf's parser takes both, and keeps the
    last; an empty one or a null clears the first): which one an agent's
    parser keeps is not the gateway's to guess."""
    task = _start(setup, "root", "ops", "jsonrpc-1.0", "adminop")
    other = _start(setup, "root", "ops", "jsonrpc-1.0", "read")
    calls = len(setup.calls("ops"))
    sent = request("jsonrpc-1.0", "read", text="go", task_id=other)
    sent.body["params"]["message"]["task_id"] = task if second == "task" else second
    got = setup.send("root", "ops", sent)
    assert got.kind == "invalid" and "more than one task" in got.message, got
    assert len(setup.calls("ops")) == calls


# Approval: the upstream task of an approved call ---------------------------------------


def _pending(setup: Setup, agent: str) -> list[dict[str, Any]]:
    with setup.admin() as admin:
        items: list[dict[str, Any]] = admin.get("/approvals", params={"limit": 100}).json()["items"]
    return [a for a in items if a["target"] == agent and a["state"] == "pending"]


def _approve_and_wait(setup: Setup, approval: str) -> dict[str, Any]:
    with setup.admin() as admin:
        return approved_and_finished(admin, approval)


def _list_tasks(setup: Setup, caller: str, agent: str) -> list[dict[str, Any]]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
    answer = setup.post(caller, agent, Sent("", {"A2A-Version": "1.0"}, body))
    tasks: list[dict[str, Any]] = answer.json()["result"]["tasks"]
    return tasks


@pytest.mark.parametrize("dialect", ["jsonrpc-1.0", "rest-0.3"])
def test_the_upstream_task_of_an_approved_call_cannot_be_continued_unapproved(
    setup: Setup, dialect: str
) -> None:
    """Mallory's `adminop` call is approved once; the agent's own task then
    waits for input, and is mallory's. Continuing it naming `read` (which
    needs no approval) would run `adminop` again without an admin."""
    for left in _pending(setup, "held-ops"):  # earlier parametrisations' leftovers
        with setup.admin() as admin:
            admin.post(f"/approvals/{left['id']}", json={"decision": "reject"})
    held = setup.send("mallory", "held-ops", request(dialect, "adminop", text="ask"))
    assert held.kind == "held", held
    (approval,) = _pending(setup, "held-ops")
    assert _approve_and_wait(setup, approval["id"])["outcome"] == "TASK_STATE_INPUT_REQUIRED"
    (gateway_task,) = [
        t for t in _list_tasks(setup, "mallory", "held-ops") if t["id"] == held.task_id
    ]
    upstream = gateway_task["metadata"]["upstreamTaskId"]
    calls = len(setup.calls("held-ops"))
    got = setup.send("mallory", "held-ops", request(dialect, "read", task_id=upstream, text="go"))
    assert got.kind == "invalid" and "is a task of skill 'adminop'" in got.message, got
    assert len(setup.calls("held-ops")) == calls and _pending(setup, "held-ops") == []
    # Naming none: decided as adminop, so held for an admin again.
    got = setup.send("mallory", "held-ops", request(dialect, task_id=upstream, text="go"))
    assert got.kind == "held", got
    (again,) = _pending(setup, "held-ops")
    assert again["action"] == "adminop"
    assert again["request"]["message"]["metadata"]["skill"] == "adminop"
    assert len(setup.calls("held-ops")) == calls
    assert _approve_and_wait(setup, again["id"])["outcome"] == "TASK_STATE_COMPLETED"
    (call,) = setup.calls("held-ops")[calls:]
    assert upstream_skills(call) == {
        "params.metadata": "adminop",
        "params.message.metadata": "adminop",
    }
    assert json.loads(call.body)["params"]["message"]["taskId"] == upstream


# /mcp's agent tools -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_tool_continues_only_its_own_skills_tasks(setup: Setup, mode: str) -> None:
    url = setup.gateway.url + "/mcp"
    async with mcp_client(url, setup.tokens["root"], mode) as client:
        asked = await client.call_tool("ops__adminop", {"message": "ask"})
        assert not asked.is_error, asked
        assert asked.structured_content is not None
        task = asked.structured_content["taskId"]
        calls = len(setup.calls("ops"))
        before = len(_refusals(setup, "ops", "root"))
        wrong = await client.call_tool("ops__read", {"message": "go", "taskId": task})
        assert wrong.is_error and "is a task of skill 'adminop'" in str(wrong.content), wrong
        assert len(setup.calls("ops")) == calls
        assert len(_refusals(setup, "ops", "root")) == before + 1
    async with mcp_client(url, setup.tokens["root-narrow"], mode) as client:
        narrow = await client.call_tool("ops__read", {"message": "go", "taskId": task})
        assert narrow.is_error, narrow
        assert len(setup.calls("ops")) == calls
    async with mcp_client(url, setup.tokens["root"], mode) as client:
        done = await client.call_tool("ops__adminop", {"message": "go", "taskId": task})
        assert not done.is_error, done
        assert "continued adminop" in str(done.content), done


# A gateway-run agent's tasks keep their skill too ------------------------------------------


def test_a_gateway_run_agents_task_is_a_task_of_its_skill(setup: Setup) -> None:
    answer = setup.post("mallory", "hook", request("jsonrpc-1.0", "read"))
    task = answer.json()["result"]["task"]["id"]
    calls = len(setup.hook.calls())
    # Not root's task: decided as named, then "not found", saying nothing of it.
    theirs = setup.post("root", "hook", request("jsonrpc-1.0", "adminop", task_id=task)).json()
    assert theirs["error"]["code"] == -32001, theirs
    got = setup.send("mallory", "hook", request("jsonrpc-1.0", "adminop", task_id=task))
    assert got.kind == "invalid" and "is a task of skill 'read'" in got.message, got
    # Named as its skill: each message to this agent is a task of its own.
    same = setup.post("mallory", "hook", request("jsonrpc-1.0", "read", task_id=task)).json()
    assert "task of its own" in same["error"]["message"], same
    assert len(setup.hook.calls()) == calls


# A part's metadata is a place too -----------------------------------------------------------


def _part_skills(call: Seen) -> list[Any]:
    body = json.loads(call.body)
    params = body.get("params", {}) if "jsonrpc" in body else body
    message = params.get("message") or params.get("request") or {}
    parts = message.get("parts") or message.get("content") or []
    return [(p.get("metadata") or {}).get("skill", ABSENT) for p in parts]


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_part_naming_another_skill_is_refused(setup: Setup, dialect: str, agent: str) -> None:
    calls = len(setup.calls(agent))
    for request_skill, message_skill in (("read", ABSENT), (ABSENT, "read"), ("read", "read")):
        sent = request(dialect, request_skill, message_skill, part_skill="adminop")
        got = setup.send("mallory", agent, sent)
        assert got.kind == "invalid" and "more than one skill" in got.message, got
        assert "parts[0].metadata.skill" in got.message or "content[0]" in got.message, got
    # Named in the part alone, it is the skill named: adminop, which mallory
    # may not use.
    assert setup.send("mallory", agent, request(dialect, part_skill="adminop")).kind == "denied"
    assert len(setup.calls(agent)) == calls
    got = setup.send("root", agent, request(dialect, part_skill="adminop"))
    assert got.kind == "ok" and "ran adminop (request says adminop)" in got.text, got
    (call,) = setup.calls(agent)[calls:]
    assert upstream_skills(call) == {
        "params.metadata": "adminop",
        "params.message.metadata": "adminop",
    }
    assert _part_skills(call) == ["adminop"]


# Contracts: a message naming no skill, to an agent with a contracted skill ---------------------


@pytest.mark.parametrize("agent", ["contracted", "contracted-rest"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_message_naming_no_skill_to_a_contracted_agent_must_name_it(
    setup: Setup, dialect: str, agent: str
) -> None:
    """The agent may pick `adminop`, whose contract the message was never
    checked against: refused, naming the contracted skills."""
    calls = len(setup.calls(agent))
    got = setup.send("root", agent, request(dialect))
    assert got.kind == "invalid", got
    assert "adminop" in got.message and "name the skill" in got.message, got
    assert setup.send("root", agent, request(dialect, "adminop")).kind == "invalid"  # no data
    assert len(setup.calls(agent)) == calls
    got = setup.send("root", agent, request(dialect, "read"))
    assert got.kind == "ok" and "ran read" in got.text, got


@pytest.mark.parametrize("agent", ["contracted", "contracted-rest"])
def test_a_contracted_skill_named_with_matching_data_goes_through(setup: Setup, agent: str) -> None:
    for dialect in ("jsonrpc-1.0", "rest-1.0"):
        sent = request(dialect, "adminop")
        message = sent.body["params"]["message"] if "jsonrpc" in sent.body else sent.body["message"]
        message["parts"].append({"data": {"sku": "A-1"}})
        got = setup.send("root", agent, sent)
        assert got.kind == "ok" and "ran adminop" in got.text, got


def test_a_held_message_naming_no_skill_to_a_contracted_agent_is_refused_not_held(
    setup: Setup,
) -> None:
    for dialect in ("jsonrpc-1.0", "rest-0.3"):
        got = setup.send("root", "held-contracted", request(dialect))
        assert got.kind == "invalid" and "name the skill" in got.message, got
        # Named, without the contract's data: refused before an admin sees it.
        got = setup.send("root", "held-contracted", request(dialect, "adminop"))
        assert got.kind == "invalid" and "contract" in got.message, got
    assert _pending(setup, "held-contracted") == []
    assert setup.calls("held-contracted") == []
