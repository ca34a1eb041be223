"""Listings agree with calls, skill by skill (docs/architecture.md, invariants).

One gateway with a policy and cards that put rules on single skills: a
policy `require` on one skill, an `approval` on another, a `*` rule denying
every skill of an agent, an agent denied outright, a card requirement that
one skill replaces with its own. For each caller, every skill is called
through the A2A front door (`metadata.skill`), and every listing of skills
-- the gateway's authenticated extended card, `GET /agents`, `GET
/agents/{id}`, its card (normalised, as registered, an old revision), a search by skill, by tag and by free text, and `/mcp`'s agent
tools -- must
show exactly the skills whose call was admitted. A call held for approval is
admitted (held, not refused), as `/mcp` lists such skills.

Real HTTP on 127.0.0.1, SQLite; one deployment for the whole table (each
caller is a fresh user).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, agent_card, inspecting_agent
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  desk:
    skills:
      secret:
        require: [desk:secret]
      held:
        approval: true
  vault:
    skills:
      open-vault:
        require: [vault:key]
  closed:
    allow: false
  mixed:
    skills:
      "*":
        allow: false
"""

# agent id -> (skills, the card's own security requirement)
CARDS: dict[str, tuple[list[dict[str, Any]], list[str] | None]] = {
    "desk": (
        [
            {"id": "open"},
            # One word only this skill has: a search for it finds desk by this skill.
            {"id": "secret", "tags": ["test", "confidential"], "description": "Reads quillwort"},
            {"id": "held"},
        ],
        None,
    ),
    "vault": ([{"id": "open-vault"}], None),  # its only skill: every message is for it
    "shop": (
        [
            # A skill's own requirement replaces the card's (shop:buy).
            {
                "id": "browse",
                "securityRequirements": [{"schemes": {"gateway": {"list": ["shop:look"]}}}],
            },
            {"id": "buy"},
        ],
        ["shop:buy"],
    ),
    "closed": ([{"id": "anything"}], None),
    "mixed": ([{"id": "one"}, {"id": "two"}], None),  # the agent is allowed, no skill is
}
SKILLS = {(agent, s["id"]) for agent, (skills, _) in CARDS.items() for s in skills}

# caller -> scopes, and the skills whose call is admitted (the table the
# listings are checked against is what the calls do; this pins it down too).
CALLERS: dict[str, tuple[str, set[tuple[str, str]]]] = {
    "nobody": ("", {("desk", "open"), ("desk", "held")}),
    "secretary": ("desk:secret", {("desk", "open"), ("desk", "held"), ("desk", "secret")}),
    "browser": (
        "vault:key shop:look",
        {("desk", "open"), ("desk", "held"), ("vault", "open-vault"), ("shop", "browse")},
    ),
    "buyer": ("shop:buy", {("desk", "open"), ("desk", "held"), ("shop", "buy")}),
    "everything": (
        "desk:secret vault:key shop:look shop:buy",
        {
            ("desk", "open"),
            ("desk", "secret"),
            ("desk", "held"),
            ("vault", "open-vault"),
            ("shop", "browse"),
            ("shop", "buy"),
        },
    ),
}


@dataclass
class Setup:
    gateway: Gateway
    tokens: dict[str, str]
    agents: list[ServerThread] = field(default_factory=list)
    recorders: dict[str, Recorder] = field(default_factory=dict)

    def http(self, caller: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}", "A2A-Version": "1.0"}
        return httpx.Client(
            base_url=self.gateway.url, headers=headers, timeout=30, verify=client_tls()
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("skill-listings")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp / "data", None, policy_file=policy)
    tokens = {who: gateway.token(who, scopes) for who, (scopes, _) in CALLERS.items()}
    tokens["admin"] = gateway.token("admin", "switchboard:admin")
    built = Setup(gateway, tokens)
    try:
        with gateway.client() as admin:
            for agent_id, (skills, scopes) in CARDS.items():
                server, recorder = inspecting_agent(
                    lambda url, a=agent_id, s=skills, r=scopes: agent_card(a, url, s, scopes=r)
                )
                built.agents.append(server)
                built.recorders[agent_id] = recorder
                card = server.url + "/.well-known/agent-card.json"
                answer = admin.post("/agents", json={"card_url": card, "id": agent_id})
                assert answer.status_code == 201, answer.text
        yield built
    finally:
        stop_all(gateway.server, *built.agents)


def _admitted(setup: Setup, caller: str) -> set[tuple[str, str]]:
    """The skills whose call the front door admits (held for approval counts)."""
    admitted = set()
    with setup.http(caller) as http:
        for agent, skill in sorted(SKILLS):
            message = {
                "messageId": f"{caller}-{skill}",
                "role": "ROLE_USER",
                "parts": [{"text": "hi"}],
            }
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendMessage",
                "params": {"message": message, "metadata": {"skill": skill}},
            }
            answer = http.post(f"/a2a/{agent}", json=body)
            if answer.status_code == 403:
                continue
            assert answer.status_code == 200 and "result" in answer.json(), answer.text
            admitted.add((agent, skill))
    return admitted


def _extended_card(http: httpx.Client) -> set[tuple[str, str]]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}
    card = http.post("/a2a", json=body).json()["result"]
    listed = {s["id"] for s in card["skills"]} - {"directory"}
    return {(agent, skill) for agent, _, skill in (s.partition("/") for s in listed)}


def _records(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["id"], s["id"]) for r in items if r["id"] in CARDS for s in r["skills"]}


def _registry(http: httpx.Client) -> dict[str, set[tuple[str, str]]]:
    """What each registry read lists, as (agent, skill) pairs."""
    listed = _records(http.get("/agents", params={"limit": 200}).json()["items"])
    one_by_one = set()
    for agent in CARDS:
        answer = http.get(f"/agents/{agent}")
        assert answer.status_code in (200, 404), answer.text
        if answer.status_code == 200:
            record = answer.json()
            one_by_one |= _records([record])
            assert set(record["skill_contracts"]) <= {s for _, s in one_by_one}
    # The card itself, as normalised, as registered and at its first revision.
    cards: dict[str, set[tuple[str, str]]] = {}
    for name, params in (("", {}), ("original", {"original": "true"}), ("rev 1", {"revision": 1})):
        shown = cards[f"GET /agents/{{id}}/card {name}".strip()] = set()
        for agent in CARDS:
            answer = http.get(f"/agents/{agent}/card", params=params)
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 200:
                shown |= {(agent, s["id"]) for s in answer.json().get("skills", [])}
    by_skill = set()
    for agent, skill in SKILLS:
        found = http.get("/agents", params={"skill": skill}).json()["items"]
        by_skill |= {(r["id"], skill) for r in found if r["id"] == agent}
    # Only desk's secret skill carries the tag: the search finds desk for it.
    tagged = http.get("/agents", params={"tag": "confidential"}).json()["items"]
    by_tag = {(r["id"], "secret") for r in tagged}
    # Likewise its description's word, alone or with a word every caller is shown.
    by_word = set()
    for q in ("quillwort", "desk quill", "QUILLWORT"):
        by_word |= {
            (r["id"], "secret") for r in http.get("/agents", params={"q": q}).json()["items"]
        }
    return {
        "GET /agents": listed,
        "GET /agents/{id}": one_by_one,
        **cards,
        "GET /agents?skill=": by_skill,
        "GET /agents?tag= (desk/secret)": by_tag,
        "GET /agents?q= (desk/secret)": by_word,
    }


async def _mcp_tools(setup: Setup, caller: str, mode: str) -> set[tuple[str, str]]:
    async with mcp_client(setup.gateway.url + "/mcp", setup.tokens[caller], mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    return {(agent, skill) for agent, skill in SKILLS if f"{agent}__{skill}" in names}


@pytest.mark.parametrize("caller", sorted(CALLERS))
async def test_every_listing_shows_exactly_the_skills_a_call_is_admitted_for(
    setup: Setup, caller: str
) -> None:
    admitted = _admitted(setup, caller)
    assert admitted == CALLERS[caller][1]
    with setup.http(caller) as http:
        listings = {"extended card": _extended_card(http), **_registry(http)}
    for mode in MODES:
        listings[f"/mcp tools/list ({mode})"] = await _mcp_tools(setup, caller, mode)
    secret = admitted & {("desk", "secret")}
    expected = {name: secret if "(desk/secret)" in name else admitted for name in listings}
    assert listings == expected


def test_admins_still_see_every_skill_in_the_registry(setup: Setup) -> None:
    with setup.gateway.client(setup.tokens["admin"]) as admin:
        items = admin.get("/agents", params={"limit": 200}).json()["items"]
        assert _records(items) == SKILLS
        assert _records([admin.get("/agents/mixed").json()]) == {("mixed", "one"), ("mixed", "two")}
        found = admin.get("/agents", params={"q": "quillwort"}).json()["items"]
        assert [r["id"] for r in found] == ["desk"]


def test_free_text_still_finds_what_a_caller_is_shown(setup: Setup) -> None:
    """`q` matches the agent's own name and description and the shown skills."""
    with setup.http("nobody") as http:
        listed = [r["id"] for r in http.get("/agents", params={"limit": 200}).json()["items"]]
        for q, expected in (
            ("desk", ["desk"]),  # the name (and the description's first word)
            ("delegation tests", listed),  # every description
            ("held", ["desk"]),  # a skill nobody may call, held for approval
            ("open", ["desk"]),  # vault's open-vault is not shown to nobody
            ("secret", []),  # the hidden skill's id and name
            ("confidential", []),  # and its tag
        ):
            found = http.get("/agents", params={"q": q, "limit": 200}).json()["items"]
            assert [r["id"] for r in found] == expected, q


def _send_unnamed(setup: Setup, caller: str, agent: str) -> httpx.Response:
    message = {
        "messageId": f"{caller}-unnamed-{agent}",
        "role": "ROLE_USER",
        "parts": [{"text": "hi"}],
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    with setup.http(caller) as http:
        return http.post(f"/a2a/{agent}", json=body)


def test_naming_no_skill_never_gets_round_a_skills_own_rule(setup: Setup) -> None:
    """A message that names no skill may reach any of the agent's skills (the
    agent picks), so it is decided as for the strictest one this caller is
    held to: refused if there is one it may not use, else held for approval
    if one needs it."""
    refused = _send_unnamed(setup, "nobody", "desk")  # may not use desk's `secret`
    assert refused.status_code == 403, refused.text
    assert "desk:secret" in refused.text
    held = _send_unnamed(setup, "secretary", "desk")  # may use it: `held` remains
    assert held.status_code == 200, held.text
    assert "TASK_STATE_AUTH_REQUIRED" in held.text
    # The agent is allowed, but none of its skills is.
    assert _send_unnamed(setup, "everything", "mixed").status_code == 403
    # `browse` needs shop:look, which replaces the card's shop:buy.
    assert _send_unnamed(setup, "buyer", "shop").status_code == 403
    # A caller who may use every skill: the message reaches the agent.
    before = len(setup.recorders["shop"].calls())
    reached = _send_unnamed(setup, "everything", "shop")
    assert reached.status_code == 200 and "result" in reached.json(), reached.text
    assert len(setup.recorders["shop"].calls()) == before + 1
    # The refusal is evidence like any other: audited, for the skill it was decided for.
    with setup.http("admin") as admin:
        events = admin.get("/audit", params={"limit": 500}).json()["items"]
    assert any(
        e["decision"] == "deny" and e["action"] == "secret" and e["subject"] == "nobody"
        for e in events
    ), events[-5:]
