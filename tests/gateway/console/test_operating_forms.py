"""The console's operating forms over real HTTP: an admin registers a vendor
agent from its document (the API key from a field of its own, sealed: the
agent then answers through the real OpenAI-compatible upstream with it),
registers a flow, issues and revokes an agent's credential -- each through
the API's own function, refused field by field with the document kept, and
audited. A non-admin and a form without the session's CSRF token are
refused, and nothing is stored by a refused form."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from registry.tls import client_tls
from tests.support.agents import v03_card
from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.vendor_servers import API_KEY, chat_server

CHAT = """\
id: chat
name: Chat
upstream:
  type: openai
  base_url: {base}/v1
  model: gpt-4o-mini
skills:
  - id: answer
    name: Answer
"""


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return make_gateway(database_url)


def audited(gateway: Gateway, event: str) -> list[dict[str, object]]:
    with gateway.client() as admin:
        items = admin.get("/audit", params={"kind": "all", "limit": 200}).json()["items"]
    return [r for r in items if r["event"] == event]


def test_an_admin_registers_a_vendor_agent_that_then_answers(gateway: Gateway) -> None:
    chat, seen, _ = chat_server()
    document = CHAT.format(base=chat.url)
    try:
        with browser(gateway) as ann, browser(gateway) as bob:
            csrf = dev_login(ann, "ann", "switchboard:admin")
            bob_csrf = dev_login(bob, "bob", "crm:read")
            assert "Register a vendor agent" in ann.get("/ui/agents").text
            assert bob.get("/ui/vendor-agents").status_code == 403
            form = {"document": document, "api_key": API_KEY}
            assert bob.post("/ui/vendor-agents", data={**form, "csrf": bob_csrf}).status_code == 403
            assert ann.post("/ui/vendor-agents", data=form).status_code == 403
            # Refused field by field, the document shown back, the key never.
            bad = document.replace("type: openai", "type: telepathy")
            refused = ann.post("/ui/vendor-agents", data={**form, "document": bad, "csrf": csrf})
            assert refused.status_code == 422
            assert "upstream" in refused.text and "telepathy" in refused.text
            assert API_KEY not in refused.text
            no_skills = yaml.safe_load(document) | {"skills": []}
            short = ann.post(
                "/ui/vendor-agents",
                data={**form, "document": json.dumps(no_skills), "csrf": csrf},
            )
            assert short.status_code == 422 and "skills" in short.text
            broken = ann.post("/ui/vendor-agents", data={**form, "document": "id: [", "csrf": csrf})
            assert broken.status_code == 422 and "not YAML or JSON" in broken.text
            with gateway.client() as admin:
                assert admin.get("/agents/chat").status_code == 404  # nothing stored
            long_key = ann.post(
                "/ui/vendor-agents", data={**form, "api_key": "k" * 5000, "csrf": csrf}
            )
            assert long_key.status_code == 422 and "api_key: longer than" in long_key.text
            done = ann.post("/ui/vendor-agents", data={**form, "csrf": csrf})
            assert done.status_code == 303, done.text
            assert done.headers["location"] == "/ui/agents/chat"
            assert API_KEY not in ann.get("/ui/agents/chat").text
            # The same id again: refused by name, the document shown back, no key.
            taken = ann.post("/ui/vendor-agents", data={**form, "csrf": csrf})
            assert taken.status_code == 409 and "id: taken" in taken.text, taken.text
            assert "gpt-4o-mini" in taken.text and API_KEY not in taken.text
        with gateway.client() as admin:
            record = admin.get("/vendor-agents/chat").json()
        assert record["config"]["credential"]["type"] == "sealed"
        # The sealed key is the one the upstream checks: a real call answers.
        message = {
            "messageId": "m-1",
            "role": "ROLE_USER",
            "parts": [{"text": "hello there"}],
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        with gateway.client(gateway.token("carol")) as carol:
            answer = carol.post("/a2a/chat", json=body, headers={"A2A-Version": "1.0"})
        assert "echo: hello there" in answer.text, answer.text
        assert [c for c in seen.calls() if c.contains(API_KEY)]
    finally:
        chat.stop()
    [made] = audited(gateway, "vendor_agent.registered")
    assert made["target"] == "chat" and made["subject"] == "ann"
    # The console's audit shows the change among the changes, not among the calls.
    with browser(gateway) as ann:
        dev_login(ann, "ann", "switchboard:admin")
        assert "vendor_agent.registered" in ann.get("/ui/audit", params={"kind": "change"}).text
        assert "vendor_agent.registered" not in ann.get("/ui/audit").text


EXCHANGE = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token": "not-a-token",
    "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
    "audience": "crm",
}
FLOW = """\
format: switchboard.flow/v1
id: hello-flow
name: Says hello
input: {type: object}
steps:
  - id: greet
    call: {agent: crm, skill: lookup}
    input: input
"""


def test_an_admin_registers_a_flow_and_a_bad_one_is_named(gateway: Gateway) -> None:
    with gateway.client() as admin:
        card = v03_card("https://crm.example.com")
        assert admin.post("/agents", json={"card": card, "id": "crm"}).status_code == 201
        skill = admin.get("/agents/crm").json()["skills"][0]["id"]
    document = FLOW.replace("lookup", skill)
    with browser(gateway) as ann, browser(gateway) as bob:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        assert "Register a flow" not in bob.get("/ui/flows").text
        assert (
            bob.post("/ui/flows", data={"document": document, "csrf": bob_csrf}).status_code == 403
        )
        assert ann.post("/ui/flows", data={"document": document}).status_code == 403
        bad = document.replace("input: input", "input: 'steps.nowhere.output'")
        refused = ann.post("/ui/flows", data={"document": bad, "csrf": csrf})
        assert refused.status_code == 422, refused.text
        assert "nowhere" in refused.text and "greet" in refused.text  # the field and its step
        assert "steps.nowhere.output" in refused.text  # the document shown back
        garbled = ann.post("/ui/flows", data={"document": "steps: [", "csrf": csrf})
        assert garbled.status_code == 422 and "not YAML or JSON" in garbled.text
        with gateway.client() as admin:
            assert admin.get("/flows/hello-flow").status_code == 404
        done = ann.post("/ui/flows", data={"document": document, "csrf": csrf})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/ui/flows/hello-flow"
        again = ann.post("/ui/flows", data={"document": document, "csrf": csrf})
        assert again.status_code == 303  # the same document: no new version
    with gateway.client() as admin:
        assert admin.get("/flows/hello-flow").json()["version"] == 1
    [made] = audited(gateway, "flow.registered")
    assert made["target"] == "hello-flow" and made["subject"] == "ann"


def test_an_admin_issues_a_credential_seen_once_and_revokes_it(gateway: Gateway) -> None:
    with gateway.client() as admin:
        card = v03_card("https://crm.example.com")
        assert admin.post("/agents", json={"card": card, "id": "crm"}).status_code == 201
    with browser(gateway) as ann, browser(gateway) as bob:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        assert bob.post("/ui/agents/crm/credentials", data={"csrf": bob_csrf}).status_code == 403
        assert ann.post("/ui/agents/crm/credentials", data={}).status_code == 403
        unknown = ann.post("/ui/agents/nobody/credentials", data={"csrf": csrf})
        assert unknown.status_code == 404
        private = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
        refused = ann.post(
            "/ui/agents/crm/credentials",
            data={"csrf": csrf, "method": "private_key_jwt", "jwks": json.dumps(private)},
        )
        assert refused.status_code == 422, refused.text
        for jwks in ("{", '{"keys": ' + "[" * 40 + "]" * 40 + "}"):
            refused = ann.post(
                "/ui/agents/crm/credentials",
                data={"csrf": csrf, "method": "private_key_jwt", "jwks": jwks},
            )
            assert refused.status_code == 422, refused.text
        with gateway.client() as admin:
            assert admin.get("/agents/crm/credentials").status_code == 404  # nothing stored
        issued = ann.post("/ui/agents/crm/credentials", data={"csrf": csrf})
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"
        with gateway.client() as admin:
            info = admin.get("/agents/crm/credentials").json()
        assert info["client_id"] in issued.text and info["method"] == "client_secret"
        secret = issued.text.split('id="secret"')[1].split("<code>")[1].split("</code>")[0]
        assert len(secret) >= 32
        # The secret passes the token endpoint's client authentication (the
        # subject token is the next thing refused)...
        check = httpx.post(
            gateway.url + "/oauth/token",
            data=EXCHANGE,
            auth=(info["client_id"], secret),
            verify=client_tls(),
        )
        assert check.json()["error"] == "invalid_grant", check.text
        # ...and is never shown again.
        assert secret not in ann.get("/ui/agents/crm").text
        revoked = ann.post("/ui/agents/crm/credentials/revoke", data={"csrf": csrf})
        assert revoked.status_code == 303
        assert "No credential" in ann.get("/ui/agents/crm").text
        gone = httpx.post(
            gateway.url + "/oauth/token",
            data=EXCHANGE,
            auth=(info["client_id"], secret),
            verify=client_tls(),
        )
        assert gone.status_code == 401 and gone.json()["error"] == "invalid_client", gone.text
    assert [r["subject"] for r in audited(gateway, "agent.credential_issued")] == ["ann"]
    assert [r["subject"] for r in audited(gateway, "agent.credential_revoked")] == ["ann"]
