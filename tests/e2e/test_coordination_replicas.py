"""Two gateway replicas on one PostgreSQL database, one policy: concurrent
calls for one customer, spread over both, obey a budget exactly -- the state
is the database's, not a replica's."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from registry.tls import client_tls
from tests.support.gateway import start_gateway
from tests.support.inspecting import agent_card, inspecting_agent
from tests.support.servers import stop_all

POLICY = """\
coordination:
  entities:
    - {entity: customer, agents: [sales], key: customer_id}
  rules:
    - {name: contact-cap, kind: budget, entity: customer, calls: {agents: [sales]},
       limit: 3, per: P1D}
"""


@pytest.mark.postgres
def test_two_replicas_give_a_budget_s_units_to_exactly_limit_calls(
    tmp_path: Path, postgres_url: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    sales, recorder = inspecting_agent(lambda url: agent_card("Sales", url, [{"id": "upsell"}]))
    one = start_gateway(tmp_path / "one", postgres_url, policy_file=policy)
    two = start_gateway(tmp_path / "two", postgres_url, policy_file=policy)
    try:
        with one.client() as admin:
            body = {"card_url": sales.url, "id": "sales"}
            assert admin.post("/agents", json=body).status_code == 201
        replicas = [(one, one.token("alice", "")), (two, two.token("alice", ""))]

        def send(index: int) -> int:
            gateway, token = replicas[index % 2]
            message = {
                "messageId": str(uuid.uuid4()),
                "role": "ROLE_USER",
                "parts": [{"data": {"customer_id": "R-1"}}],
            }
            body = {
                "jsonrpc": "2.0",
                "id": index,
                "method": "SendMessage",
                "params": {"message": message, "metadata": {"skill": "upsell"}},
            }
            headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
            answer = httpx.post(
                f"{gateway.url}/a2a/sales",
                json=body,
                headers=headers,
                timeout=30,
                verify=client_tls(),
            )
            return answer.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = sorted(pool.map(send, range(12)))
        assert codes == [200] * 3 + [409] * 9, codes
        assert len(recorder.calls()) == 3
        for gateway in (one, two):  # both replicas see the same count
            with gateway.client() as admin:
                (count,) = admin.get(
                    "/coordination/holds", params={"entity": "customer:R-1"}
                ).json()["items"]
            assert count["count"] == 3
    finally:
        stop_all(one.server, two.server, sales)
