"""Property tests against a live gateway: random chains only ever shrink
scopes, and `POST /policies/explain` agrees with what really happens.

One deployment serves all examples (starting one per example would dominate);
each example uses fresh user names, so the minted-token cache and earlier
examples cannot influence it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.delegation import AGENT_SKILLS, Deployment, deployment

AGENTS = ["support", "sales", "inventory"]
TARGETS = [*AGENTS, "audit-bot"]
SCOPES = ["support:write", "sales:quote", "inventory:read", "inventory:write", "hr:read"]
_users = itertools.count()
scope_sets = st.frozensets(st.sampled_from(SCOPES))
# Users often hold everything, so chains get deep enough to be interesting.
user_scope_sets = st.just(frozenset(SCOPES)) | scope_sets


@st.composite
def chains(draw: st.DrawFn) -> list[tuple[str, frozenset[str] | None]]:
    """Distinct agents in random order, sometimes ending with a repeat (a cycle)."""
    # The policy is shaped for support -> sales -> inventory: take that order often.
    order = draw(st.just(tuple(AGENTS)) | st.permutations(AGENTS))
    path = list(order[: draw(st.integers(1, len(AGENTS)))])
    if draw(st.booleans()):
        path.append(draw(st.sampled_from(path)))
    return [(agent, draw(st.none() | st.none() | scope_sets)) for agent in path]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("properties")) as d:
        yield d


def _scope(token: str) -> frozenset[str]:
    return frozenset(jwt.decode(token, options={"verify_signature": False})["scope"].split())


def _act_depth(token: str) -> int:
    act = jwt.decode(token, options={"verify_signature": False}).get("act")
    depth = 0
    while act:
        depth += 1
        act = act.get("act")
    return depth


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_scopes=user_scope_sets, hops=chains())
def test_scopes_only_shrink_along_random_chains(
    dep: Deployment,
    user_scopes: frozenset[str],
    hops: list[tuple[str, frozenset[str] | None]],
) -> None:
    user = f"chain-user-{next(_users)}"
    first_agent = hops[0][0]
    response = dep.send(first_agent, dep.gateway.token(user, " ".join(sorted(user_scopes))))
    if response.status_code != 200:
        assert response.status_code == 403, response.text
        event("first hop refused")
        return
    token = dep[first_agent].recorder.calls()[-1].bearer
    assert token is not None
    held, holder, chain = _scope(token), first_agent, [first_agent]
    assert held <= user_scopes
    for target, requested in hops[1:]:
        response = dep.exchange(
            token,
            by=holder,
            audience=target,
            scope=" ".join(sorted(requested)) if requested is not None else None,
        )
        if target in chain:
            # A -> ... -> A: always refused, whatever the scopes.
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_target"
            event(f"cycle refused at depth {len(chain) + 1}")
            return
        if response.status_code != 200:
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error in {"invalid_scope", "invalid_target"}, response.text
            if requested is not None and not requested <= held:
                assert error == "invalid_scope"
            event(f"exchange refused: {error}")
            return
        token = response.json()["access_token"]
        granted = _scope(token)
        # The invariant: never more than the token it derives from, nor than asked.
        assert granted <= held
        if requested is not None:
            assert granted <= requested
        assert jwt.decode(token, options={"verify_signature": False})["sub"] == user
        assert _act_depth(token) == len(chain) + 1
        held, holder = granted, target
        chain.append(target)
    event(f"chain completed at depth {len(chain)}")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    user_scopes=scope_sets,
    caller=st.sampled_from(AGENTS),
    target=st.sampled_from(TARGETS),
    requested=st.none() | scope_sets,
)
def test_explain_agrees_with_the_real_decision(
    dep: Deployment,
    user_scopes: frozenset[str],
    caller: str,
    target: str,
    requested: frozenset[str] | None,
) -> None:
    user = f"explain-user-{next(_users)}"
    user_token = dep.gateway.token(user, " ".join(sorted(user_scopes)))
    with dep.gateway.client() as admin:
        # 1. The user's own call to `target` (chain: none) through the front door.
        explained = admin.post(
            "/policies/explain", json={"user_scopes": sorted(user_scopes), "target": target}
        ).json()
        # For the target's first skill, which has no rule of its own: the
        # agent's decision, which explain (no action) gives.
        sent = dep.send(target, user_token, skill=AGENT_SKILLS[target][0]["id"])
        assert (explained["decision"] == "allow") == (sent.status_code == 200), sent.text
        # Listings use the same decision: the agent is visible iff it is usable.
        with dep.gateway.client(user_token) as user_client:
            listed = user_client.get(f"/agents/{target}").status_code
        assert (listed == 200) == (sent.status_code == 200), (listed, sent.text)
        if sent.status_code == 200:
            seen = dep[target].recorder.calls()[-1].bearer
            assert seen is not None
            assert sorted(_scope(seen)) == explained["granted_scopes"]

        # 2. `caller` exchanging the user's token for `target` (chain: caller).
        body: dict[str, object] = {
            "user_scopes": sorted(user_scopes),
            "chain": [caller],
            "target": target,
        }
        if requested is not None:
            body["requested_scopes"] = sorted(requested)
        explained = admin.post("/policies/explain", json=body).json()
    event(f"exchange: {explained['decision']} {explained['denial'] or ''}")
    exchanged = dep.exchange(
        user_token,
        by=caller,
        audience=target,
        scope=" ".join(sorted(requested)) if requested is not None else None,
    )
    if explained["decision"] == "allow":
        assert exchanged.status_code == 200, (explained, exchanged.text)
        assert sorted(_scope(exchanged.json()["access_token"])) == explained["granted_scopes"]
    else:
        assert exchanged.status_code == 400, (explained, exchanged.text)
        expected = {
            "scope_exceeds_subject": "invalid_scope",
            "missing_scope": "invalid_scope",
            "card_requirement": "invalid_scope",
        }.get(explained["denial"], "invalid_target")
        assert exchanged.json()["error"] == expected
        assert explained["reasons"][0] in exchanged.json()["error_description"]
