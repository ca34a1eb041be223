"""Resilient handoffs (docs/resilience.md) over real HTTP, on SQLite and PostgreSQL.

Contracts refuse bad data before the agent is called; idempotent calls are
retried and others never; a failing agent's breaker opens, fails fast,
probes and closes; a dead agent's delegation goes to its fallback; the audit
shows each step. Both ways a SendMessage takes through the gateway are
exercised: the 1.0 JSON-RPC pass-through and the SDK path (the HTTP+JSON
binding), with official SDK clients where the answer is an A2A error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import ParseDict
from google.protobuf.struct_pb2 import Value

from registry.tls import client_tls
from tests.support.clock import Clock
from tests.support.flaky_agent import FlakyAgent, flaky_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import bound_socket, stop_all
from tests.support.waiting import wait_for

USER = "alice"
CONTRACT = {
    "type": "object",
    "required": ["sku", "qty"],
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
}
POLICY = """
version: 1
agents:
  again:
    idempotent: true
  primary:
    skills:
      work:
        fallback: backup
"""
THRESHOLD = 3
# The breaker's test moves the breakers' clock by hand (`Clock`).
COOLDOWN = 3.0


@dataclass
class Setup:
    gateway: Gateway
    agents: dict[str, FlakyAgent]
    token: str

    def send(
        self, agent: str, *, parts: list[dict[str, Any]] | None = None, rest: bool = False
    ) -> dict[str, Any]:
        """SendMessage: JSON-RPC 1.0 (the pass-through) or HTTP+JSON (the SDK path)."""
        message = {
            "messageId": uuid.uuid4().hex,
            "role": "ROLE_USER",
            "parts": parts or [{"text": "hello"}],
        }
        headers = {"Authorization": f"Bearer {self.token}", "A2A-Version": "1.0"}
        url = f"{self.gateway.url}/a2a/{agent}"
        if rest:
            answer = httpx.post(
                url + "/message:send",
                json={"message": message},
                headers=headers,
                timeout=30,
                verify=client_tls(),
            )
            body: dict[str, Any] = answer.json()
            return body
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        answer = httpx.post(url, json=rpc, headers=headers, timeout=30, verify=client_tls())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body

    def audit(self, agent: str, count: int = 1) -> list[dict[str, Any]]:
        """The agent's audit records once there are ``count`` (the audit log
        is written behind the answer)."""
        with self.gateway.client() as admin:

            def written() -> list[dict[str, Any]] | None:
                items: list[dict[str, Any]] = admin.get("/audit", params={"agent": agent}).json()[
                    "items"
                ]
                return items if len(items) >= count else None

            return wait_for(written, what=f"{count} audit records of {agent}")

    def record(self, agent: str) -> dict[str, Any]:
        with self.gateway.client() as admin:
            body: dict[str, Any] = admin.get(f"/agents/{agent}").json()
            return body


def _text(answer: dict[str, Any]) -> str:
    result = answer.get("result", answer)  # JSON-RPC result, or the REST body
    text: str = result["message"]["parts"][0]["text"]
    return text


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    names = ("strict", "once", "again", "backup")
    # The backup streams; the dead primary's card is the backup's, so it does too.
    agents = {name: flaky_agent(name, streams=name == "backup") for name in names}
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(
        tmp_path / "data",
        database_url,
        policy_file=policy,
        breaker_failure_threshold=THRESHOLD,
        breaker_cooldown_seconds=COOLDOWN,
        retry_max_attempts=3,
        retry_base_delay_seconds=0.01,
        retry_max_delay_seconds=0.05,
    )
    try:
        closed = bound_socket()  # an agent whose address is gone
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        closed.close()
        card = agents["backup"].card()
        interfaces = card["supportedInterfaces"]
        assert isinstance(interfaces, list)
        dead = {**card, "supportedInterfaces": [{**interfaces[0], "url": dead_url}]}
        with gateway.client() as admin:
            for name, agent in agents.items():
                extra = {"skill_contracts": {"work": CONTRACT}} if name == "strict" else {}
                registered = admin.post("/agents", json={"card": agent.card(), "id": name, **extra})
                assert registered.status_code == 201, registered.text
            registered = admin.post("/agents", json={"card": dead, "id": "primary"})
            assert registered.status_code == 201, registered.text
        yield Setup(gateway, agents, gateway.token(USER, "work:run"))
    finally:
        stop_all(gateway.server, *(a.server for a in agents.values() if a.server is not None))


# --- Contracts ------------------------------------------------------------------------


async def test_the_sdk_client_hears_which_field_breaks_the_contract(setup: Setup) -> None:
    message = Message(message_id="m1", role=Role.ROLE_USER)
    message.parts.append(Part(data=ParseDict({"sku": "A-1", "qty": 0}, Value())))
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {setup.token}"}, timeout=30, verify=client_tls()
    ) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
        client = await factory.create_from_url(f"{setup.gateway.url}/a2a/strict")
        with pytest.raises(InvalidParamsError) as refused:
            async for _ in client.send_message(SendMessageRequest(message=message)):
                pass
    assert "/qty" in str(refused.value) and "minimum" in str(refused.value)
    assert setup.agents["strict"].calls == 0


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_a_contract_refusal_names_the_field_and_the_agent_is_never_called(
    setup: Setup, rest: bool
) -> None:
    answer = setup.send("strict", parts=[{"text": "see data"}, {"data": {"sku": "A-1"}}], rest=rest)
    if rest:
        error = answer["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert "/qty" in error["message"]
    else:
        error = answer["error"]
        assert error["code"] == -32602
        assert "data part 1" in error["message"] and "/qty" in error["message"]
        (info, bad_request) = error["data"]
        assert info["metadata"]["pointer"] == "/qty"
        assert info["metadata"]["skill"] == "work"
        violation = bad_request["fieldViolations"][0]
        assert violation["field"] == "message.parts[1].data/qty"
        assert "required" in violation["description"]
    # No data part at all is refused too; a wrong skill name is -32602.
    assert "error" in setup.send("strict", rest=rest)
    assert setup.agents["strict"].calls == 0
    (event, *_) = setup.audit("strict", 2)
    assert event["outcome"] == "a2a_error:InvalidParamsError"
    assert "not called" in event["detail"]
    # Data that matches goes through.
    ok = setup.send("strict", parts=[{"data": {"sku": "A-1", "qty": 2}}], rest=rest)
    assert _text(ok) == "from strict"
    assert setup.agents["strict"].calls == 1


def test_a_skill_named_in_metadata_must_exist(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {setup.token}", "A2A-Version": "1.0"}
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}
    rpc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": message, "metadata": {"skill": "nope"}},
    }
    answer = httpx.post(
        f"{setup.gateway.url}/a2a/strict", json=rpc, headers=headers, verify=client_tls()
    ).json()
    assert answer["error"]["code"] == -32602
    assert "no skill 'nope'" in answer["error"]["message"]


def test_registration_refuses_an_unusable_contract(setup: Setup) -> None:
    card = setup.agents["once"].card()
    with setup.gateway.client() as admin:
        for contracts, words in (
            ({"work": {"type": "bogus"}}, "not a valid JSON Schema at /type"),
            ({"nope": {"type": "object"}}, "declares no such skill"),
            ({"work": {"$ref": "https://example.com/s.json"}}, "only references inside"),
        ):
            answer = admin.post(
                "/agents",
                json={"card": card, "id": "x", "resource": "urn:x", "skill_contracts": contracts},
            )
            assert answer.status_code == 422, answer.text
            problem = answer.json()
            assert problem["type"].endswith("invalid-contract")
            assert words in problem["detail"]
            assert problem["errors"][0]["field"].startswith("skill_contracts.")
        assert admin.get("/agents/x").status_code == 404


# --- Retries ------------------------------------------------------------------------


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_a_call_not_marked_idempotent_is_made_exactly_once(setup: Setup, rest: bool) -> None:
    once = setup.agents["once"]
    once.fail_next = 1
    answer = setup.send("once", rest=rest)
    assert "error" in answer
    assert once.calls == 1
    (event,) = setup.audit("once")
    assert "attempts" not in (event["detail"] or "")


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_an_idempotent_call_is_retried_on_transient_failures(setup: Setup, rest: bool) -> None:
    again = setup.agents["again"]
    again.fail_next = 2
    assert _text(setup.send("again", rest=rest)) == "from again"
    assert again.calls == 3
    (event,) = setup.audit("again")
    assert event["outcome"] == "ok"
    assert event["detail"] == "after 3 attempts"
    # Bounded: three failures in a row are the caller's error, after three calls.
    again.fail_next = 5
    assert "error" in setup.send("again", rest=rest)
    assert again.calls == 6


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_an_a2a_error_from_the_agent_is_never_retried(setup: Setup, rest: bool) -> None:
    again = setup.agents["again"]
    again.a2a_error = True
    answer = setup.send("again", rest=rest)
    assert "says the agent" in str(answer)
    assert again.calls == 1


# --- The breaker ----------------------------------------------------------------------


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_the_breaker_opens_fails_fast_probes_and_closes(
    setup: Setup, rest: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway's breakers on a clock of the test's own: the cool-down
    # passes when the test says, not when a loaded machine gets round to it.
    clock = Clock()
    breakers = setup.gateway.server.app.state.switchboard.breakers
    monkeypatch.setattr(breakers, "_monotonic", clock)
    once = setup.agents["once"]
    assert setup.record("once")["breaker"] == {"state": "closed", "failures": 0, "opened_at": None}
    once.down = True
    for _ in range(THRESHOLD):
        assert "error" in setup.send("once", rest=rest)
    assert once.calls == THRESHOLD
    breaker = setup.record("once")["breaker"]
    assert breaker["state"] == "open" and breaker["failures"] == THRESHOLD
    assert breaker["opened_at"] is not None
    # Open: the agent is not called, nor called again after a retry's
    # backoff: the caller is told why at once, and the audit says so.
    failed_fast = setup.send("once", rest=rest)
    assert "circuit breaker is open" in str(failed_fast)
    assert once.calls == THRESHOLD
    details = [e["detail"] or "" for e in setup.audit("once", THRESHOLD + 1)]
    [refused] = [d for d in details if "circuit breaker is open" in d]
    assert "attempts" not in refused
    # Still open a moment before the cool-down's end.
    clock.now += COOLDOWN - 0.01
    assert "circuit breaker is open" in str(setup.send("once", rest=rest))
    assert once.calls == THRESHOLD
    # After the cool-down one probe goes through; it fails: open again.
    clock.now += 0.01
    assert "error" in setup.send("once", rest=rest)
    assert once.calls == THRESHOLD + 1
    assert setup.record("once")["breaker"]["state"] == "open"
    # The agent recovers; once the cool-down has passed again (the breaker
    # reads its clock at the next call), the probe succeeds and closes it.
    once.down = False
    clock.now += COOLDOWN
    assert _text(setup.send("once", rest=rest)) == "from once"
    assert setup.record("once")["breaker"] == {"state": "closed", "failures": 0, "opened_at": None}
    outcomes = [e["detail"] or "" for e in setup.audit("once", THRESHOLD + 3)]
    assert any("circuit breaker is open" in d for d in outcomes)


# --- Fallback -------------------------------------------------------------------------


@pytest.mark.parametrize("rest", [False, True], ids=["pass-through", "sdk-path"])
def test_a_dead_agents_delegation_goes_to_its_fallback(setup: Setup, rest: bool) -> None:
    answer = setup.send("primary", rest=rest)
    assert _text(answer) == "from backup"
    assert setup.agents["backup"].calls == 1
    (primary,) = setup.audit("primary")
    assert primary["outcome"] == "a2a_error:InternalError"
    assert "could not be reached" in primary["detail"]
    assert "handed to fallback backup" in primary["detail"]
    (backup,) = setup.audit("backup")
    assert backup["outcome"] == "ok"
    assert backup["detail"].startswith("fallback for primary")
    # One trace, two hops' records, each with its own minted token.
    assert primary["trace_id"] == backup["trace_id"]
    assert primary["token_id"] != backup["token_id"]


def test_an_open_breaker_sends_straight_to_the_fallback(setup: Setup) -> None:
    for _ in range(THRESHOLD):
        setup.send("primary")
    assert setup.record("primary")["breaker"]["state"] == "open"
    assert _text(setup.send("primary", rest=True)) == "from backup"
    assert setup.agents["backup"].calls == THRESHOLD + 1
    details = [e["detail"] for e in setup.audit("primary", THRESHOLD + 1)]
    assert any("circuit breaker is open" in d and "handed to fallback" in d for d in details)


def test_a_stream_to_an_agent_whose_breaker_is_open_goes_to_the_fallback(setup: Setup) -> None:
    """A stream is handed over before it opens: the fallback's call is
    decided for the same caller and skill, and each hop has one record."""
    for _ in range(THRESHOLD):
        setup.send("primary")
    assert setup.record("primary")["breaker"]["state"] == "open"
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    rpc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }
    headers = {
        "Authorization": f"Bearer {setup.token}",
        "A2A-Version": "1.0",
        "Accept": "text/event-stream",
    }
    with httpx.stream(
        "POST",
        f"{setup.gateway.url}/a2a/primary",
        json=rpc,
        headers=headers,
        timeout=30,
        verify=client_tls(),
    ) as answer:
        assert answer.status_code == 200
        events = [json.loads(line[5:]) for line in answer.iter_lines() if line.startswith("data:")]
    assert [_text(event) for event in events] == ["from backup"]
    # Each message that opened the breaker went to the backup too.
    assert setup.agents["backup"].calls == THRESHOLD + 1
    (opened,) = [e for e in setup.audit("primary", THRESHOLD + 1) if "breaker" in e["detail"]]
    assert opened["event"] == "a2a.SendStreamingMessage"
    assert "handed to fallback backup" in opened["detail"]
    backup = [
        e for e in setup.audit("backup", THRESHOLD + 1) if e["trace_id"] == opened["trace_id"]
    ]
    assert [(e["event"], e["outcome"]) for e in backup] == [("a2a.SendStreamingMessage", "ok")]
