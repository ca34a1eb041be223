"""Property test: through `/mcp`, `tools/list` and `tools/call` make the same
decision (docs/architecture.md, invariants) -- a user never sees a tool they cannot call,
nor calls one they cannot see -- for random scope sets, in both revisions.

One deployment serves every example; the policy mixes the rule kinds that
decide a tool: a server-wide requirement, per-tool requirements, a denial and
a human-approval rule (listed: such a call is held for an admin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import MCPError

from gateway.mcp.approvals import STATUS_TOOL
from gateway.mcp.errors import DELEGATION_REFUSED
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  alpha:
    require: [alpha:use]
    tools:
      fail: {allow: false}
      whoami: {require: [secrets:read]}
  beta:
    tools:
      add: {require: [math:add]}
      slow: {require: [math:add, time:wait]}
      whoami: {approval: true}
"""
SCOPES = ["alpha:use", "secrets:read", "math:add", "time:wait", "other:thing"]
ARGUMENTS = {"add": {"a": 1, "b": 2}, "slow": {"steps": 1}, "fail": {}, "whoami": {}}


@dataclass
class Deployment:
    gateway: Gateway
    upstreams: list[ServerThread]
    names: list[str]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("mcp-properties")
    (root / "policy.yaml").write_text(POLICY)
    gateway = start_gateway(root / "data", None, policy_file=root / "policy.yaml")
    upstreams = [upstream_server()[0] for _ in range(2)]
    try:
        with gateway.client() as admin:
            for name, server in zip(("alpha", "beta"), upstreams, strict=True):
                response = admin.post(
                    "/mcp-servers", json={"name": name, "url": server.url + "/mcp"}
                )
                assert response.status_code == 201, response.text
        names = [f"{s}__{t}" for s in ("alpha", "beta") for t in ARGUMENTS]
        yield Deployment(gateway, upstreams, names)
    finally:
        stop_all(gateway.server, *upstreams)


async def _listed_and_callable(dep: Deployment, token: str, mode: str) -> tuple[set[str], set[str]]:
    async with mcp_client(dep.gateway.url + "/mcp", token, mode) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        callable_, errors = set(), []
        for name in dep.names:
            try:
                await client.call_tool(name, ARGUMENTS[name.split("__")[1]])
            except MCPError as exc:
                errors.append(exc.code)
                continue
            callable_.add(name)
    assert set(errors) <= {DELEGATION_REFUSED}, errors  # refused, nothing else
    return listed, callable_


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scopes=st.frozensets(st.sampled_from(SCOPES)), mode=st.sampled_from(MODES))
def test_tools_list_agrees_with_tools_call(
    dep: Deployment, scopes: frozenset[str], mode: str
) -> None:
    token = dep.gateway.token("prop-user", " ".join(sorted(scopes)))
    listed, callable_ = asyncio.run(_listed_and_callable(dep, token, mode))
    event(f"{len(listed)} tools listed")
    # A tool that needs approval is listed, and its call is held (not refused);
    # whoever may see one is offered the status tool to collect the outcome.
    assert listed - {STATUS_TOOL} == callable_
    assert "beta__whoami" in listed and STATUS_TOOL in listed
