"""The same-version pass-through (1.0 JSON-RPC SendMessage to a 1.0 JSON-RPC agent).

The request's bytes go upstream unchanged and the agent's bytes come back, but
everything the SDK path does still happens: the minted token instead of the
caller's, ownership checks, the task record, the checks on the answer, the
audit. The upstream here is a scripted agent that misbehaves on request, over
real HTTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.a2a_agents import scripted_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.servers import ServerThread, bound_socket, stop_all

USER = "alice"
OTHER = "bob"
MAX_ANSWER_BYTES = 100_000


@dataclass
class Scripted:
    gateway: Gateway
    agent: ServerThread
    seen: Recorder
    tokens: dict[str, str]

    def send(
        self, text: str, user: str = USER, *, agent: str = "scripted", **message: Any
    ) -> httpx.Response:
        return self.post(
            {
                "jsonrpc": "2.0",
                "id": "req-1",
                "method": "SendMessage",
                "params": {
                    "message": {
                        "messageId": f"m-{text}",
                        "role": "ROLE_USER",
                        "parts": [{"text": text}],
                        **message,
                    }
                },
            },
            user,
            agent=agent,
        )

    def post(
        self,
        body: dict[str, Any] | bytes,
        user: str = USER,
        *,
        agent: str = "scripted",
        version: str | None = "1.0",
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.tokens[user]}",
            "Content-Type": "application/json",
        }
        if version:
            headers["A2A-Version"] = version
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            f"{self.gateway.url}/a2a/{agent}",
            content=content,
            headers=headers,
            timeout=30,
            verify=client_tls(),
        )


@pytest.fixture
def scripted(tmp_path: Path, database_url: str | None) -> Iterator[Scripted]:
    seen = Recorder()
    agent = scripted_agent(seen)
    gateway = start_gateway(tmp_path, database_url, upstream_max_bytes=MAX_ANSWER_BYTES)
    try:
        card = httpx.get(agent.url + "/.well-known/agent-card.json", verify=client_tls()).json()
        # An agent whose address is gone: the card is the same, the port closed.
        closed = bound_socket()
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        closed.close()
        dead = {
            **card,
            "supportedInterfaces": [{**card["supportedInterfaces"][0], "url": dead_url}],
        }
        with gateway.client() as admin:
            for agent_id, agent_card in (("scripted", card), ("dead", dead)):
                registered = admin.post("/agents", json={"card": agent_card, "id": agent_id})
                assert registered.status_code == 201, registered.text
        tokens = {user: gateway.token(user, "work:run") for user in (USER, OTHER)}
        yield Scripted(gateway, agent, seen, tokens)
    finally:
        stop_all(gateway.server, agent)


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "result" not in body, body
    assert body["id"] == "req-1" or body["id"] is None
    error: dict[str, Any] = body["error"]
    return error


def test_the_agent_gets_what_the_gateway_checked_with_a_token_minted_for_it(
    scripted: Scripted,
) -> None:
    raw = (
        b'{"jsonrpc": "2.0",  "id": "req-1", "method": "SendMessage", "params": '
        b'{"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "task"}]},'
        b' "tenant": "someone-elses", "x-vendor-extra": {"kept": true}}}'
    )
    response = scripted.post(raw)
    assert response.status_code == 200
    assert response.json()["id"] == "req-1"
    assert response.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    (call,) = scripted.seen.calls()
    # The canonical form of the checked request: no unknown field, no tenant
    # (the gateway has none, so a caller may not pick one upstream), and the
    # skill it was decided for -- the agent's only one -- in both places.
    skill = {"skill": "work"}
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "task"}]}
    assert json.loads(call.body) == {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": "SendMessage",
        "params": {"message": {**message, "metadata": skill}, "metadata": skill},
    }
    assert call.headers["a2a-version"] == "1.0"
    # The upstream got a token minted for it, never the caller's.
    assert not call.contains(scripted.tokens[USER])
    claims = verify_as_downstream(call.bearer or "", scripted.gateway.url, scripted.agent.url + "/")
    assert claims["sub"] == USER


@pytest.mark.parametrize(
    ("smuggled", "refused"),
    [
        # Python keeps the last of a key given twice; some parsers keep the first.
        (b'"taskId": "VICTIM", "messageId": "m2", "taskId": "OWN"', False),
        # Protobuf's JSON parser takes a field under either name; the last wins.
        # The front door reads both spellings, and two tasks are refused.
        (b'"taskId": "VICTIM", "messageId": "m2", "task_id": "OWN"', True),
    ],
)
def test_two_spellings_of_a_task_id_cannot_smuggle_another_users_task(
    scripted: Scripted, smuggled: bytes, refused: bool
) -> None:
    victim = scripted.send("task").json()["result"]["task"]["id"]
    own = scripted.send("task", OTHER, messageId="m-bob").json()["result"]["task"]["id"]
    calls = len(scripted.seen.calls())
    raw = (
        b'{"jsonrpc": "2.0", "id": "req-1", "method": "SendMessage", "params": {"message": {'
        + smuggled.replace(b"VICTIM", victim.encode()).replace(b"OWN", own.encode())
        + b', "role": "ROLE_USER", "parts": [{"text": "task"}]}}}'
    )
    response = scripted.post(raw, OTHER)
    if refused:
        assert _error(response)["code"] == -32602
        assert "more than one task" in _error(response)["message"]
        assert scripted.seen.calls()[calls:] == []
        return
    assert response.json()["result"]["task"]["id"] == own
    (call,) = scripted.seen.calls()[calls:]
    assert victim.encode() not in call.body
    assert json.loads(call.body)["params"]["message"]["taskId"] == own


def test_a_task_from_the_pass_through_is_owned_by_its_caller(scripted: Scripted) -> None:
    task = scripted.send("task").json()["result"]["task"]
    headers = {"Authorization": f"Bearer {scripted.tokens[USER]}", "A2A-Version": "1.0"}
    listed = httpx.post(
        f"{scripted.gateway.url}/a2a/scripted",
        json={"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {}},
        headers=headers,
        verify=client_tls(),
    ).json()["result"]
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    calls = len(scripted.seen.seen)
    # Bob continuing Alice's task, or her context, never reaches the agent.
    assert _error(scripted.send("task", OTHER, taskId=task["id"]))["code"] == -32001
    assert _error(scripted.send("task", OTHER, contextId=task["contextId"]))["code"] == -32001
    hijack = scripted.send("task", OTHER, referenceTaskIds=[task["id"]])
    assert _error(hijack)["code"] == -32001
    assert len(scripted.seen.seen) == calls
    # Alice may continue it.
    assert "result" in scripted.send("task", taskId=task["id"]).json()


@pytest.mark.parametrize(
    ("script", "code", "words"),
    [
        ("http500", -32006, "HTTP 500"),
        ("garbage", -32006, "invalid answer"),
        ("wrong-id", -32006, "another request id"),
        ("gzip", -32006, "gzip-coded"),
        ("huge", -32006, f"exceeds {MAX_ANSWER_BYTES} bytes"),
        ("neither", -32006, "neither"),
        ("bad-task", -32006, "invalid answer"),
        ("a2a-error", -32001, "gone"),
    ],
)
def test_a_misbehaving_agent_gets_a_clear_a2a_error(
    scripted: Scripted, script: str, code: int, words: str
) -> None:
    error = _error(scripted.send(script))
    assert error["code"] == code
    assert words in error["message"]
    if code == -32006:
        assert "scripted" in error["message"]  # which agent misbehaved


def test_a_dead_agent_is_an_internal_error_naming_it(scripted: Scripted) -> None:
    error = _error(scripted.send("task", agent="dead"))
    assert error["code"] == -32603
    assert "agent dead could not be reached" in error["message"]
    with scripted.gateway.client() as admin:
        events = admin.get("/audit", params={"agent": "dead"}).json()["items"]
    assert any(e["outcome"] == "a2a_error:InternalError" for e in events), events


def test_what_the_pass_through_does_not_take_goes_to_the_sdk(scripted: Scripted) -> None:
    calls = len(scripted.seen.seen)
    # Bad params: the SDK's own -32602, and nothing reaches the agent.
    bad = {"jsonrpc": "2.0", "id": "req-1", "method": "SendMessage", "params": {"message": 5}}
    assert _error(scripted.post(bad))["code"] == -32602
    # A push config inline is refused (-32003), also before the agent.
    inline = scripted.send("task", OTHER)
    assert "result" in inline.json()
    calls = len(scripted.seen.seen)
    body = {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "p", "role": "ROLE_USER", "parts": [{"text": "task"}]},
            "configuration": {"taskPushNotificationConfig": {"url": "https://example.com/h"}},
        },
    }
    assert _error(scripted.post(body))["code"] == -32003
    # No A2A-Version header means 0.3 (A2A 1.0 §3.6.2), but 0.3 has no such method:
    # a 1.0 method name is read as 1.0 (`gateway.a2a.versions`), so its params are checked.
    assert _error(scripted.post({**bad, "params": {}}, version=None))["code"] == -32602
    assert _error(scripted.post({**bad, "params": {}}, version="0.3"))["code"] == -32009
    assert len(scripted.seen.seen) == calls


def test_an_invalid_task_on_the_sdk_path_is_an_a2a_error_too(scripted: Scripted) -> None:
    # The agent does not stream, so a streamed SendMessage goes through the SDK
    # path, which calls SendMessage upstream: its bad task must not be a 500.
    body = {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": "SendStreamingMessage",
        "params": {
            "message": {"messageId": "s", "role": "ROLE_USER", "parts": [{"text": "bad-task"}]}
        },
    }
    # The first event is fetched before the stream starts (the SDK's eager
    # check), so the error comes as a plain JSON-RPC error, not as SSE.
    assert _error(scripted.post(body)) == {
        "code": -32006,
        "message": "agent scripted sent an invalid answer",
        "data": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "INVALID_AGENT_RESPONSE",
                "domain": "a2a-protocol.org",
                "metadata": {},
            }
        ],
    }


def test_a_callers_tenant_never_reaches_the_agent_on_the_sdk_path_either(
    scripted: Scripted,
) -> None:
    # The SDK's REST client would put it in the upstream path (/{tenant}/...).
    body = {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": "SendStreamingMessage",
        "params": {
            "tenant": "../someone-else",
            "message": {"messageId": "t", "role": "ROLE_USER", "parts": [{"text": "message"}]},
        },
    }
    response = scripted.post(body)
    assert response.status_code == 200 and "someone-else" not in response.text
    (call,) = scripted.seen.calls()
    assert b"tenant" not in call.body and b"someone-else" not in call.body


def test_a_skills_own_rule_applies_to_the_call_not_only_to_listings(
    tmp_path: Path, database_url: str | None
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "agents:\n  scripted:\n    skills:\n      work:\n        require: [work:special]\n"
    )
    seen = Recorder()
    agent = scripted_agent(seen)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    try:
        card = httpx.get(agent.url + "/.well-known/agent-card.json", verify=client_tls()).json()
        with gateway.client() as admin:
            assert admin.post("/agents", json={"card": card, "id": "scripted"}).status_code == 201
        tokens = {
            "plain": gateway.token(USER, "work:run"),
            "special": gateway.token(USER, "work:special"),
        }
        message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "message"}]}
        for method in ("SendMessage", "SendStreamingMessage"):
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
            for who, allowed in (("plain", False), ("special", True)):
                headers = {"Authorization": f"Bearer {tokens[who]}", "A2A-Version": "1.0"}
                answer = httpx.post(
                    f"{gateway.url}/a2a/scripted", json=body, headers=headers, verify=client_tls()
                )
                if allowed:
                    assert "error" not in answer.text[:200], answer.text
                else:
                    # The agent's only skill is the message's skill: its rule counts.
                    assert answer.status_code == 403, answer.text
                    assert "work:special" in answer.json()["error"]["message"]
        rest = httpx.post(
            f"{gateway.url}/a2a/scripted/message:send",
            json={"message": message},
            headers={"Authorization": f"Bearer {tokens['plain']}", "A2A-Version": "1.0"},
            verify=client_tls(),
        )
        assert rest.status_code == 403, rest.text
        assert len(seen.calls()) == 2  # only the allowed caller's two calls
    finally:
        stop_all(gateway.server, agent)


def _rest(
    scripted: Scripted, text: str, user: str = USER, *, agent: str = "scripted", **message: Any
) -> httpx.Response:
    """The same message through the HTTP+JSON binding's `message:send`."""
    headers = {"Authorization": f"Bearer {scripted.tokens[user]}", "A2A-Version": "1.0"}
    body = {"message": {"messageId": f"m-{text}", "role": "ROLE_USER", "parts": [{"text": text}]}}
    body["message"].update(message)
    return httpx.post(
        f"{scripted.gateway.url}/a2a/{agent}/message:send",
        json=body,
        headers=headers,
        timeout=30,
        verify=client_tls(),
    )


def test_the_http_json_door_sends_what_the_gateway_checked(scripted: Scripted) -> None:
    """HTTP+JSON's `message:send` takes the same path as JSON-RPC's: the
    agent gets the canonical request, no tenant, a token minted for it; the
    task is the caller's, answered as the SDK's REST dispatcher answers."""
    headers = {"Authorization": f"Bearer {scripted.tokens[USER]}", "A2A-Version": "1.0"}
    raw = (
        b'{"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "task"}]},'
        b' "tenant": "someone-elses", "x-vendor-extra": {"kept": true}}'
    )
    response = httpx.post(
        f"{scripted.gateway.url}/a2a/scripted/message:send",
        content=raw,
        headers={**headers, "Content-Type": "application/json"},
        timeout=30,
        verify=client_tls(),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/a2a+json"
    task = response.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    (call,) = scripted.seen.calls()
    sent = json.loads(call.body)
    assert sent["method"] == "SendMessage"
    skill = {"skill": "work"}
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "task"}]}
    assert sent["params"] == {"message": {**message, "metadata": skill}, "metadata": skill}
    assert not call.contains(scripted.tokens[USER])
    # Bob continuing Alice's task never reaches the agent: 404, as for none.
    taken = _rest(scripted, "task", OTHER, taskId=task["id"])
    assert taken.status_code == 404, taken.text
    assert taken.json()["error"]["status"] == "NOT_FOUND"
    assert len(scripted.seen.calls()) == 1


@pytest.mark.parametrize(
    ("script", "status", "words"),
    [
        ("http500", 502, "HTTP 500"),
        ("garbage", 502, "invalid answer"),
        ("neither", 502, "neither"),
        ("a2a-error", 404, "gone"),
    ],
)
def test_the_http_json_door_says_what_went_wrong_in_its_binding(
    scripted: Scripted, script: str, status: int, words: str
) -> None:
    answer = _rest(scripted, script)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]


def test_a_dead_agent_through_the_http_json_door_is_unavailable(scripted: Scripted) -> None:
    answer = _rest(scripted, "task", agent="dead")
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["message"] == "agent dead could not be reached (connection failed)"


@pytest.mark.parametrize(
    "smuggled",
    [
        # A key given twice: refused by the parse (the SDK's REST dispatcher's).
        b'"taskId": "VICTIM", "messageId": "m2", "taskId": "OWN"',
        # Both spellings: the front door reads both, and two tasks are refused.
        b'"taskId": "VICTIM", "messageId": "m2", "task_id": "OWN"',
    ],
)
def test_two_spellings_cannot_smuggle_another_users_task_over_http_json(
    scripted: Scripted, smuggled: bytes
) -> None:
    victim = scripted.send("task").json()["result"]["task"]["id"]
    own = scripted.send("task", OTHER, messageId="m-bob").json()["result"]["task"]["id"]
    calls = len(scripted.seen.calls())
    raw = (
        b'{"message": {'
        + smuggled.replace(b"VICTIM", victim.encode()).replace(b"OWN", own.encode())
        + b', "role": "ROLE_USER", "parts": [{"text": "task"}]}}'
    )
    answer = httpx.post(
        f"{scripted.gateway.url}/a2a/scripted/message:send",
        content=raw,
        headers={
            "Authorization": f"Bearer {scripted.tokens[OTHER]}",
            "A2A-Version": "1.0",
            "Content-Type": "application/json",
        },
        timeout=30,
        verify=client_tls(),
    )
    # Refused before the agent: 400 (the ids are the caller's own words).
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert scripted.seen.calls()[calls:] == []
