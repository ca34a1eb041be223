"""Token exchange and the coordination rules: a token for a coordinated
agent itself would let it be called past the rules (which read each call's
input at the gateway), so it is not issued; a token for the agent's front
door at the gateway is, and the call through it meets the rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.delegation import POLICY, USER_SCOPES, Deployment, deployment

COORDINATION = """\
coordination:
  entities:
    - entity: sku
      agents: [inventory]
      key: sku
  rules:
    - name: one-reservation
      kind: exclusive
      entity: sku
      calls: {agents: [inventory], skills: [reserve-stock]}
      ttl: PT1M
"""


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    policy = tmp_path / "coordinated.yaml"
    policy.write_text(POLICY + COORDINATION)
    with deployment(tmp_path, policy_file=policy) as made:
        yield made


def _sales_token(dep: Deployment) -> str:
    alice = dep.gateway.token("alice", USER_SCOPES)
    assert dep.send("sales", alice).status_code == 200
    token = dep["sales"].recorder.calls()[-1].bearer
    assert token is not None
    return token


def test_a_token_for_the_coordinated_agent_itself_is_not_issued(dep: Deployment) -> None:
    refused = dep.exchange(
        _sales_token(dep), by="sales", resource=dep["inventory"].resource, scope="inventory:read"
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_target"
    front_door = f"{dep.gateway.url}/a2a/inventory"
    assert front_door in refused.json()["error_description"]
    issued = dep.exchange(
        _sales_token(dep), by="sales", resource=front_door, scope="inventory:read"
    )
    assert issued.status_code == 200, issued.text
    # An agent no rule names is exchanged for as before.
    support = dep.exchange(
        _sales_token(dep), by="sales", resource=dep["support"].resource, scope="support:write"
    )
    assert "coordination" not in support.text, support.text
    with dep.gateway.client() as admin:
        records = admin.get("/audit", params={"agent": "inventory", "limit": "20"}).json()["items"]
    assert any(r["detail"] == "coordinated: not issued" for r in records)
