"""The skill the policy decided is the only skill the agent can see (issue 15).

A caller can name a message's skill in two places -- `metadata.skill` of the
SendMessage request and of the message -- and an agent serving several
skills reads one of them (the gateway's own `/mcp` bridge writes the
message's). The attack: `params.metadata.skill = "read"` (allowed, no
approval) with `message.metadata.skill = "adminop"` (a `require` the caller
lacks, an approval). These tests send it, and its variants, on every binding
and version a caller can speak (JSON-RPC 1.0 and 0.3, HTTP+JSON 1.0 and 0.3)
to agents of every dialect the gateway calls (1.0 JSON-RPC -- the
pass-through for 1.0 JSON-RPC callers --, 1.0 HTTP+JSON, 0.3 JSON-RPC),
through the approval path, the `/mcp` bridge and a gateway-run webhook
agent; and a Hypothesis property drives random placements.

Real HTTP on 127.0.0.1, official-SDK agents that record what they received
and answer with the skill they read; one deployment (SQLite) for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import MCPError

from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all
from tests.support.skill_agents import Hook, Kind, hook_server, skill_agent, upstream_skills
from tests.support.skill_requests import (
    ABSENT,
    DIALECTS,
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
  ops-stream:
    skills:
      adminop: {require: [ops:admin]}
  hook:
    skills:
      adminop: {require: [ops:admin]}
"""
# agent id -> the kind of A2A agent behind it
AGENTS: dict[str, Kind] = {"ops": "jsonrpc", "ops-rest": "rest", "ops-legacy": "legacy"}
CALLERS = {"mallory": "", "root": "ops:admin"}


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

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.tokens["admin"])

    def clear(self) -> None:
        for recorder in self.seen.values():
            recorder.clear()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("skill-decision")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp / "data", None, policy_file=policy)
    extra = ["held-ops", "ops-stream"]
    seen = {agent: Recorder() for agent in [*AGENTS, *extra]}
    servers = [skill_agent(kind, seen[agent], agent) for agent, kind in AGENTS.items()]
    servers.append(skill_agent("jsonrpc", seen["held-ops"], "held-ops"))
    servers.append(skill_agent("jsonrpc", seen["ops-stream"], "ops-stream", streaming=True))
    hook = hook_server()
    tokens = {who: gateway.token(who, scopes) for who, scopes in CALLERS.items()}
    tokens["admin"] = gateway.token("admin", "switchboard:admin")
    try:
        with gateway.client(tokens["admin"]) as admin:
            for agent, server in zip([*AGENTS, *extra], servers, strict=True):
                card = server.url + "/.well-known/agent-card.json"
                answer = admin.post("/agents", json={"card_url": card, "id": agent})
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
        params: dict[str, str | int] = {"agent": agent, "decision": "deny", "limit": 200}
        items = admin.get("/audit", params=params).json()["items"]
    return [r for r in items if r["outcome"] == "invalid_request" and r["subject"] == subject]


# The attack ------------------------------------------------------------------------


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_two_skills_in_one_request_are_refused_and_nothing_reaches_the_agent(
    setup: Setup, dialect: str, agent: str
) -> None:
    setup.clear()
    before = len(_refusals(setup, agent, "mallory"))
    for request_skill, message_skill in (("read", "adminop"), ("adminop", "read")):
        sent = request(dialect, request_skill, message_skill)
        got = outcome(sent, setup.post("mallory", agent, sent))
        assert got.kind == "invalid", got
        assert "more than one skill" in got.message and "'adminop'" in got.message, got
    assert setup.seen[agent].calls() == [], "the agent was called"
    assert len(_refusals(setup, agent, "mallory")) == before + 2


@pytest.mark.parametrize(
    ("request_skill", "message_skill", "says"),
    [
        (None, "adminop", "must be a string"),  # a null "wins" the first place: no more
        ("adminop", 7, "must be a string"),
        ("nope", ABSENT, "no skill 'nope'"),
        (ABSENT, "nope", "no skill 'nope'"),
        ("read", "nope", "more than one skill"),
    ],
)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_skill_that_is_not_one_of_the_cards_is_refused(
    setup: Setup, dialect: str, request_skill: Any, message_skill: Any, says: str
) -> None:
    setup.clear()
    sent = request(dialect, request_skill, message_skill)
    got = outcome(sent, setup.post("mallory", "ops", sent))
    assert got.kind == "invalid" and says in got.message, got
    assert setup.seen["ops"].calls() == []


def test_the_0_3_http_json_message_under_its_proto_name_is_read_too(setup: Setup) -> None:
    """0.3 HTTP+JSON is parsed as the 0.3 proto, whose message field is
    `request` (JSON name `message`): either name carries the message."""
    setup.clear()
    sent = request("rest-0.3", "read", "adminop", message_key="request")
    assert outcome(sent, setup.post("mallory", "ops", sent)).kind == "invalid"
    sent = request("rest-0.3", ABSENT, "adminop", message_key="request")
    assert outcome(sent, setup.post("mallory", "ops", sent)).kind == "denied"
    assert setup.seen["ops"].calls() == []
    sent = request("rest-0.3", ABSENT, "read", message_key="request")
    got = outcome(sent, setup.post("mallory", "ops", sent))
    assert got.kind == "ok" and "ran read" in got.text, got
    (call,) = setup.seen["ops"].calls()
    assert set(upstream_skills(call).values()) == {"read"}


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_decided_skill_is_named_in_every_place_upstream(
    setup: Setup, dialect: str, agent: str
) -> None:
    # Named in one place only, the other: the agent reads it in both.
    for caller, request_skill, message_skill, skill in (
        ("mallory", "read", ABSENT, "read"),
        ("root", ABSENT, "adminop", "adminop"),
        ("root", "adminop", "adminop", "adminop"),
    ):
        setup.clear()
        sent = request(dialect, request_skill, message_skill)
        got = outcome(sent, setup.post(caller, agent, sent))
        assert got.kind == "ok", got
        assert f"ran {skill} (request says {skill})" in got.text, got
        (call,) = setup.seen[agent].calls()
        assert upstream_skills(call) == {
            "params.metadata": skill,
            "params.message.metadata": skill,
        }
    # Only the skill decided: a caller without its scope is refused.
    sent = request(dialect, ABSENT, "adminop")
    assert outcome(sent, setup.post("mallory", agent, sent)).kind == "denied"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_message_naming_no_skill_goes_upstream_naming_none(setup: Setup, dialect: str) -> None:
    """Decided as for the strictest skill (the agent picks), never given one."""
    setup.clear()
    sent = request(dialect)
    got = outcome(sent, setup.post("root", "ops", sent))
    assert got.kind == "ok" and "ran - (request says -)" in got.text, got
    (call,) = setup.seen["ops"].calls()
    assert upstream_skills(call) == {}
    # mallory may not use adminop, which the agent might pick: refused.
    assert outcome(sent, setup.post("mallory", "ops", sent)).kind == "denied"
    assert len(setup.seen["ops"].calls()) == 1


@pytest.mark.parametrize(
    ("dialect", "path", "method"),
    [
        ("jsonrpc-1.0", "", "SendStreamingMessage"),
        ("jsonrpc-0.3", "", "message/stream"),
        ("rest-1.0", "/message:stream", None),
        ("rest-0.3", "/v1/message:stream", None),
    ],
)
def test_a_stream_names_the_decided_skill_too(
    setup: Setup, dialect: str, path: str, method: str | None
) -> None:
    def streamed(request_skill: Any, message_skill: Any) -> Sent:
        sent = request(dialect, request_skill, message_skill)
        body = {**sent.body, "method": method} if method else sent.body
        return Sent(path, sent.headers, body)

    setup.clear()
    sent = streamed("read", "adminop")
    assert outcome(sent, setup.post("mallory", "ops-stream", sent)).kind == "invalid"
    assert setup.seen["ops-stream"].calls() == []
    answer = setup.post("mallory", "ops-stream", streamed("read", ABSENT))
    assert answer.status_code == 200, answer.text
    assert "ran read (request says read)" in answer.text, answer.text
    (call,) = setup.seen["ops-stream"].calls()
    assert json.loads(call.body)["method"] == "SendStreamingMessage"
    assert upstream_skills(call) == {"params.metadata": "read", "params.message.metadata": "read"}


# Held for approval, replayed once approved ----------------------------------------


def _approvals(setup: Setup) -> list[dict[str, Any]]:
    with setup.admin() as admin:
        items: list[dict[str, Any]] = admin.get("/approvals", params={"limit": 100}).json()["items"]
    return [a for a in items if a["target"] == "held-ops" and a["state"] == "pending"]


def _approve_and_wait(setup: Setup, approval: str) -> dict[str, Any]:
    with setup.admin() as admin:
        return approved_and_finished(admin, approval)


@pytest.mark.parametrize("dialect", ["jsonrpc-1.0", "rest-0.3"])
def test_a_held_request_names_the_skill_it_was_held_for_when_replayed(
    setup: Setup, dialect: str
) -> None:
    setup.clear()
    for approval in _approvals(setup):  # earlier parametrisations' leftovers
        with setup.admin() as admin:
            admin.post(f"/approvals/{approval['id']}", json={"decision": "reject"})
    # The attack: not held, not run -- refused.
    sent = request(dialect, "read", "adminop")
    assert outcome(sent, setup.post("mallory", "held-ops", sent)).kind == "invalid"
    assert _approvals(setup) == []
    # read needs no approval: straight through.
    sent = request(dialect, "read")
    got = outcome(sent, setup.post("mallory", "held-ops", sent))
    assert got.kind == "ok" and "ran read" in got.text, got
    setup.clear()
    # adminop, named in the request's metadata only: held, for adminop.
    sent = request(dialect, "adminop")
    assert outcome(sent, setup.post("mallory", "held-ops", sent)).kind == "held"
    (held,) = _approvals(setup)
    assert held["action"] == "adminop"
    stored = held["request"]
    assert stored["metadata"]["skill"] == stored["message"]["metadata"]["skill"] == "adminop"
    assert setup.seen["held-ops"].calls() == []
    assert _approve_and_wait(setup, held["id"])["outcome"] == "TASK_STATE_COMPLETED"
    (call,) = setup.seen["held-ops"].calls()
    assert upstream_skills(call) == {
        "params.metadata": "adminop",
        "params.message.metadata": "adminop",
    }
    # Naming none: held as for the strictest skill, replayed naming none.
    setup.clear()
    sent = request(dialect)
    assert outcome(sent, setup.post("mallory", "held-ops", sent)).kind == "held"
    (held,) = _approvals(setup)
    # The admin is shown what it was held as; the request itself names none.
    assert held["action"] == "adminop"
    assert "skill" not in held["request"].get("metadata", {})
    assert "skill" not in held["request"]["message"].get("metadata", {})
    assert _approve_and_wait(setup, held["id"])["outcome"] == "TASK_STATE_COMPLETED"
    (call,) = setup.seen["held-ops"].calls()
    assert upstream_skills(call) == {}


# The /mcp bridge --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_the_mcp_bridge_names_the_tools_skill_and_only_it(setup: Setup, mode: str) -> None:
    setup.clear()
    token = setup.tokens["mallory"]
    async with mcp_client(setup.gateway.url + "/mcp", token, mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "ops__read" in names and "ops__adminop" not in names
        result = await client.call_tool("ops__read", {"message": "hi"})
        assert not result.is_error, result
        assert "ran read (request says read)" in str(result.content)
        # Metadata smuggled in the arguments names nothing upstream.
        try:
            smuggled = await client.call_tool(
                "ops__read", {"message": "hi", "metadata": {"skill": "adminop"}}
            )
        except MCPError:
            pass  # refused by the tool's input schema: fine too
        else:
            assert "adminop" not in str(smuggled.content), smuggled
        with pytest.raises(MCPError):
            await client.call_tool("ops__adminop", {"message": "hi"})
    calls = setup.seen["ops"].calls()
    assert calls, "the agent was never called"
    for call in calls:
        assert upstream_skills(call) == {
            "params.metadata": "read",
            "params.message.metadata": "read",
        }


# A gateway-run (REST webhook) agent: the skill is the webhook body's `skill` --------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_gateway_run_agent_is_told_the_decided_skill(setup: Setup, dialect: str) -> None:
    before = len(setup.hook.calls())
    sent = request(dialect, "read", "adminop")
    assert outcome(sent, setup.post("mallory", "hook", sent)).kind == "invalid"
    assert len(setup.hook.calls()) == before, "the webhook was called"
    for request_skill, message_skill in (("read", ABSENT), (ABSENT, "read"), ("read", "read")):
        sent = request(dialect, request_skill, message_skill)
        got = outcome(sent, setup.post("mallory", "hook", sent))
        assert got.kind == "ok" and "webhook ran read" in got.text, got
        assert setup.hook.calls()[-1]["skill"] == "read"
    sent = request(dialect, ABSENT, "adminop")
    assert outcome(sent, setup.post("mallory", "hook", sent)).kind == "denied"
    assert all(body["skill"] == "read" for body in setup.hook.calls()[before:])


# The property ------------------------------------------------------------------------

PLACEMENTS = st.sampled_from([ABSENT, ABSENT, "read", "adminop", "nope", None, 7])


def _expected(caller: str, request_skill: Any, message_skill: Any) -> tuple[str, str | None]:
    """What must happen: ("invalid" | "denied" | "ok", the skill decided)."""
    named = [v for v in (request_skill, message_skill) if v is not ABSENT]
    if any(not isinstance(v, str) for v in named) or len(set(named)) > 1:
        return "invalid", None
    skill = named[0] if named else None
    if skill not in (None, "read", "adminop"):
        return "invalid", None
    # Naming none is decided as for adminop, which only root may use.
    if caller != "root" and skill != "read":
        return "denied", skill
    return "ok", skill


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dialect=st.sampled_from(DIALECTS),
    agent=st.sampled_from(sorted(AGENTS)),
    caller=st.sampled_from(sorted(CALLERS)),
    request_skill=PLACEMENTS,
    message_skill=PLACEMENTS,
)
def test_the_agent_receives_the_decided_skill_or_nothing_at_all(
    setup: Setup, dialect: str, agent: str, caller: str, request_skill: Any, message_skill: Any
) -> None:
    setup.clear()
    sent = request(dialect, request_skill, message_skill)
    got = outcome(sent, setup.post(caller, agent, sent))
    expected, skill = _expected(caller, request_skill, message_skill)
    event(f"{expected} ({dialect})")
    assert got.kind == expected, (got, expected)
    calls = setup.seen[agent].calls()
    if expected != "ok":
        assert calls == [], "refused, yet something reached the agent"
        return
    (call,) = calls
    places = upstream_skills(call)
    if skill is None:
        assert places == {}, places
        assert "ran - (request says -)" in got.text, got
    else:
        assert places == {"params.metadata": skill, "params.message.metadata": skill}
        assert f"ran {skill} (request says {skill})" in got.text, got
