"""A three-agent delegation set-up for e2e tests: support -> sales -> inventory.

Each agent is an official-SDK A2A server that records what it receives
(`tests.support.inspecting`). The gateway runs with a real policy file; each
agent is registered and given a credential: support and inventory a client
secret, sales its own key pair (private_key_jwt / actor_token assertions).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from policies.exchange import ACCESS_TOKEN_TYPE, JWT_BEARER_ASSERTION, JWT_TOKEN_TYPE
from policies.keys import ec_public_jwk
from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, agent_card, inspecting_agent
from tests.support.servers import ServerThread, stop_all

POLICY = """\
defaults:
  max_depth: 4
agents:
  support:
    require: [support:write]
    grant: [support:write, sales:quote, inventory:read, inventory:write]
  sales:
    require: [sales:quote]
    grant: [sales:quote, inventory:read, inventory:write]
  inventory:
    grant: [inventory:read, inventory:write]
    skills:
      reserve-stock:
        require: [inventory:write]
  audit-bot:
    allow: false
"""

USER_SCOPES = "support:write sales:quote inventory:read hr:read"


@dataclass
class AgentHandle:
    id: str
    server: ServerThread
    recorder: Recorder
    resource: str = ""
    secret: str | None = None
    key: ec.EllipticCurvePrivateKey | None = None

    def assertion(self, gateway_url: str, *, jti: str | None = None, **claims: Any) -> str:
        """A private_key_jwt assertion (RFC 7523) signed with this agent's key."""
        assert self.key is not None
        now = int(time.time())
        payload = {
            "iss": self.id,
            "sub": self.id,
            "aud": gateway_url + "/oauth/token",
            "iat": now,
            "exp": now + 60,
            "jti": jti or uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="ES256", headers={"kid": f"{self.id}-1"})


@dataclass
class Deployment:
    gateway: Gateway
    agents: dict[str, AgentHandle] = field(default_factory=dict)
    policy_path: Path = Path()

    def __getitem__(self, agent_id: str) -> AgentHandle:
        return self.agents[agent_id]

    def exchange(
        self,
        subject_token: str,
        *,
        by: str,
        resource: str | None = None,
        audience: str | None = None,
        scope: str | None = None,
        method: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        """`POST /oauth/token` as agent ``by``, with that agent's credential."""
        agent = self.agents[by]
        form: dict[str, str] = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
        }
        if resource is not None:
            form["resource"] = resource
        if audience is not None:
            form["audience"] = audience
        if scope is not None:
            form["scope"] = scope
        auth: tuple[str, str] | None = None
        method = method or ("actor_token" if agent.key is not None else "basic")
        if method == "basic":
            assert agent.secret is not None
            auth = (agent.id, agent.secret)
        elif method == "post":
            assert agent.secret is not None
            form.update(client_id=agent.id, client_secret=agent.secret)
        elif method == "actor_token":
            form.update(
                actor_token=agent.assertion(self.gateway.url), actor_token_type=JWT_TOKEN_TYPE
            )
        elif method == "private_key_jwt":
            form.update(
                client_assertion_type=JWT_BEARER_ASSERTION,
                client_assertion=agent.assertion(self.gateway.url),
            )
        form.update(extra or {})
        return httpx.post(
            self.gateway.url + "/oauth/token", data=form, auth=auth, timeout=30, verify=client_tls()
        )

    def send(
        self, agent_id: str, token: str, text: str = "hello", *, skill: str | None = None
    ) -> httpx.Response:
        """SendMessage to ``agent_id`` through the gateway's A2A front door
        (for ``skill``, in ``metadata.skill``)."""
        from tests.support.inspecting import send_message_body

        body = send_message_body(text)
        if skill is not None:
            body["params"]["metadata"] = {"skill": skill}
        return httpx.post(
            f"{self.gateway.url}/a2a/{agent_id}",
            json=body,
            headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
            timeout=30,
            verify=client_tls(),
        )


AGENT_SKILLS = {
    "support": [{"id": "triage"}],
    "sales": [{"id": "quote"}],
    "inventory": [{"id": "check-stock"}, {"id": "reserve-stock"}],
    "audit-bot": [{"id": "audit"}],
}


@contextmanager
def deployment(
    tmp_path: Path, database_url: str | None = None, **overrides: Any
) -> Iterator[Deployment]:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    agents: dict[str, AgentHandle] = {}
    servers: list[ServerThread] = []
    try:
        for agent_id, skills in AGENT_SKILLS.items():
            server, recorder = inspecting_agent(
                lambda url, agent_id=agent_id, skills=skills: agent_card(
                    agent_id.title(), url, skills
                )
            )
            servers.append(server)
            agents[agent_id] = AgentHandle(agent_id, server, recorder)
        overrides.setdefault("policy_file", policy_path)
        overrides.setdefault("policy_reload_seconds", 0.1)
        gw = start_gateway(tmp_path / "data", database_url, **overrides)
        servers.insert(0, gw.server)
        with gw.client() as admin:
            for agent in agents.values():
                registered = admin.post(
                    "/agents", json={"card_url": agent.server.url, "id": agent.id}
                )
                assert registered.status_code == 201, registered.text
                agent.resource = registered.json()["resource"]
                if agent.id == "sales":
                    agent.key = ec.generate_private_key(ec.SECP256R1())
                    jwk = {**ec_public_jwk(agent.key.public_key()), "kid": "sales-1"}
                    body: dict[str, Any] = {
                        "method": "private_key_jwt",
                        "jwks": {"keys": [jwk]},
                    }
                else:
                    body = {"method": "client_secret"}
                issued = admin.post(f"/agents/{agent.id}/credentials", json=body)
                assert issued.status_code == 201, issued.text
                agent.secret = issued.json()["client_secret"]
        yield Deployment(gw, agents, policy_path)
    finally:
        stop_all(*servers)
