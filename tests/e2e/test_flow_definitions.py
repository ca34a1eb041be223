"""Registering flows: every bad document is refused with an RFC 9457 problem
naming each problem's step and field; good ones are versioned like cards."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.flows.documents import json_schema, shipped_schema
from tests.support.flows import QUOTE_FLOW, FlowSetup, flow_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path_factory.mktemp("flows"), None) as made:
        yield made


def _branch(doc: dict[str, Any], index: int) -> dict[str, Any]:
    branch: dict[str, Any] = doc["steps"][0]["parallel"]["branches"][index]
    return branch


def _set(
    path: Callable[[dict[str, Any]], dict[str, Any]], **values: Any
) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        path(doc).update(values)

    return change


QUOTE = "steps[0].parallel.branches[0]"
STOCK = "steps[0].parallel.branches[1]"
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str | None, str, str]] = [
    (
        "a step of no kind",
        lambda d: d["steps"].insert(0, {"id": "nothing"}),
        "nothing",
        "steps[0]",
        "exactly one of call, parallel, route, checkpoint",
    ),
    (
        "retries below zero",
        _set(lambda d: _branch(d, 0), retries=-1),
        "quote",
        f"{QUOTE}.retries",
        "greater than or equal to 0",
    ),
    (
        "an unknown agent",
        _set(lambda d: _branch(d, 0)["call"], agent="nobody"),
        "quote",
        f"{QUOTE}.call.agent",
        "no agent 'nobody'",
    ),
    (
        "an agent that is not a flow, called as one",
        lambda d: _branch(d, 0).update(call={"flow": "sales", "skill": "quote"}),
        "quote",
        f"{QUOTE}.call.flow",
        "no flow 'sales'",
    ),
    (
        "a flow and an agent at once",
        _set(lambda d: _branch(d, 0)["call"], flow="quote-flow"),
        "quote",
        f"{QUOTE}.call",
        "name exactly one of agent, tool or flow",
    ),
    (
        "an unknown skill",
        _set(lambda d: _branch(d, 0)["call"], skill="haggle"),
        "quote",
        f"{QUOTE}.call.skill",
        "no skill 'haggle'",
    ),
    (
        "an agent with several skills and none named",
        lambda d: _branch(d, 0)["call"].pop("skill"),
        "quote",
        f"{QUOTE}.call.skill",
        "has 5 skills: name one",
    ),
    (
        "an unknown tool",
        _set(lambda d: _branch(d, 1)["call"], tool="inventory__steal"),
        "stock",
        f"{STOCK}.call.tool",
        "no MCP tool",
    ),
    (
        "an expression that does not compile",
        _set(lambda d: _branch(d, 0), input="{sku: "),
        "quote",
        f"{QUOTE}.input",
        "not a JMESPath expression",
    ),
    (
        "an unknown step",
        _set(lambda d: d["steps"][3], input="steps.nope.output"),
        "reply",
        "steps[3].input",
        "no step 'nope'",
    ),
    (
        "a later step",
        _set(lambda d: _branch(d, 0), input="steps.reply.output"),
        "quote",
        f"{QUOTE}.input",
        "'reply' has not run yet",
    ),
    (
        "a sibling branch",
        _set(lambda d: _branch(d, 1), input="steps.quote.output"),
        "stock",
        f"{STOCK}.input",
        "'quote' has not run yet",
    ),
    (
        "an unknown root",
        _set(lambda d: d["steps"][3], input="order.total"),
        "reply",
        "steps[3].input",
        "'order' is not known here",
    ),
    (
        "a route backwards without max",
        lambda d: d["steps"][1]["route"][1].update(goto="check"),
        "big_discount",
        "steps[1].max",
        "a route that goes back needs max",
    ),
    (
        "a route nowhere",
        lambda d: d["steps"][1]["route"][1].update(goto="lunch"),
        "big_discount",
        "steps[1].route[1].goto",
        "no step 'lunch'",
    ),
    (
        "an otherwise that is not last",
        lambda d: d["steps"][1]["route"].reverse(),
        "big_discount",
        "steps[1].route[0].when",
        "only the last case may omit when",
    ),
    (
        "retries on a non-idempotent agent",
        _set(lambda d: _branch(d, 0), retries=2),
        "quote",
        f"{QUOTE}.retries",
        "not idempotent",
    ),
    (
        "a mapping missing a required field",
        _set(lambda d: _branch(d, 0), input="{sku: input.sku}"),
        "quote",
        f"{QUOTE}.input.quantity",
        "required by the target's contract",
    ),
    (
        "a mapping of the wrong type",
        _set(lambda d: _branch(d, 0), input="{sku: input.sku, quantity: input.customer}"),
        "quote",
        f"{QUOTE}.input.quantity",
        "produces string, the target's contract wants integer",
    ),
    (
        "a field the contract forbids",
        _set(
            lambda d: _branch(d, 0), input="{sku: input.sku, quantity: input.quantity, note: 'x'}"
        ),
        "quote",
        f"{QUOTE}.input.note",
        "no such field",
    ),
    (
        "an MCP tool's input of the wrong type",
        _set(lambda d: _branch(d, 1), input="{sku: input.quantity, quantity: input.quantity}"),
        "stock",
        f"{STOCK}.input.sku",
        "produces integer, the target's contract wants string",
    ),
    (
        "a skill contract and no input",
        lambda d: _branch(d, 0).pop("input"),
        "quote",
        f"{QUOTE}.input",
        "takes data matching its contract",
    ),
    (
        "a message to a tool",
        _set(lambda d: _branch(d, 1), message="input.sku"),
        "stock",
        f"{STOCK}.message",
        "takes input, not a message",
    ),
    (
        "a step id used twice",
        _set(lambda d: d["steps"][3], id="quote"),
        "quote",
        "steps[3].id",
        "used twice",
    ),
    (
        "a quorum above the branches",
        _set(lambda d: d["steps"][0]["parallel"], join={"quorum": 3}),
        "check",
        "steps[0].parallel.join.quorum",
        "a quorum of 3 out of 2",
    ),
    (
        "a bad output expression",
        lambda d: d.update(output="steps.nobody"),
        None,
        "output",
        "no step 'nobody'",
    ),
    (
        "an id that cannot be an agent's",
        lambda d: d.update(id="Quote Flow"),
        None,
        "id",
        "should match pattern",
    ),
]


@pytest.mark.parametrize(
    ("change", "step", "field", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_bad_document_is_refused_naming_the_step_and_the_field(
    setup: FlowSetup,
    change: Callable[[dict[str, Any]], None],
    step: str | None,
    field: str,
    message: str,
) -> None:
    document = copy.deepcopy(QUOTE_FLOW)
    document["id"] = "bad-flow"
    change(document)
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "urn:switchboard:problem:invalid-flow"
    matching = [e for e in problem["errors"] if e["field"] == field]
    assert matching, problem["errors"]
    assert matching[0]["step"] == step
    assert message in matching[0]["message"], matching[0]
    with setup.admin() as admin:
        assert admin.get("/flows/bad-flow").status_code == 404


def test_flows_that_would_call_each_other_in_a_cycle_are_refused(setup: FlowSetup) -> None:
    inner: dict[str, Any] = {
        "format": "switchboard.flow/v1",
        "id": "inner",
        "name": "Inner",
        "steps": [
            {"id": "outer_again", "call": {"agent": "sales", "skill": "work"}, "input": "`{}`"}
        ],
    }
    assert setup.register(inner).status_code == 201
    outer: dict[str, Any] = {
        "format": "switchboard.flow/v1",
        "id": "outer",
        "name": "Outer",
        "steps": [{"id": "go", "call": {"agent": "inner"}, "input": "input"}],
    }
    assert setup.register(outer).status_code == 201
    inner["steps"][0] = {"id": "back", "call": {"agent": "outer"}, "input": "input"}
    refused = setup.register(inner)
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["step"] == "back" and error["field"] == "steps[0].call.agent"
    assert "inner -> outer -> inner" in error["message"]
    itself = {**outer, "steps": [{"id": "me", "call": {"agent": "outer"}, "input": "input"}]}
    refused = setup.register(itself)
    assert refused.status_code == 422
    assert "outer -> outer" in refused.json()["errors"][0]["message"]
    # Through a map's per-item call, or a call's fallback, as well.
    mapped = {"over": "`[1, 2]`", "call": {"flow": "outer"}, "input": "`{}`"}
    by_map = {**inner, "steps": [{"id": "each", "map": mapped}]}
    refused = setup.register(by_map)
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["step"] == "each" and error["field"] == "steps[0].map.call.agent", error
    assert "inner -> outer -> inner" in error["message"]
    falling = {"agent": "sales", "skill": "work"}
    by_fallback = {
        **inner,
        "steps": [{"id": "try", "call": falling, "fallback": {"agent": "outer"}, "input": "`{}`"}],
    }
    refused = setup.register(by_fallback)
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["step"] == "try" and error["field"] == "steps[0].fallback.agent", error
    # A stored flow's map counts too: "mapper" maps over "leaf"; "leaf" may
    # not then call "mapper".
    leaf = {**inner, "id": "leaf", "steps": [{"id": "work", "call": falling, "input": "`{}`"}]}
    assert setup.register(leaf).status_code == 201
    mapper_map = {**mapped, "call": {"flow": "leaf"}}
    mapper = {**inner, "id": "mapper", "steps": [{"id": "each", "map": mapper_map}]}
    assert setup.register(mapper).status_code == 201
    back = {**leaf, "steps": [{"id": "up", "call": {"flow": "mapper"}, "input": "`{}`"}]}
    refused = setup.register(back)
    assert refused.status_code == 422, refused.text
    assert "leaf -> mapper -> leaf" in refused.json()["errors"][0]["message"]


def test_versions_are_kept_and_an_unchanged_document_is_not_a_new_one(setup: FlowSetup) -> None:
    document = copy.deepcopy(QUOTE_FLOW)
    document["id"] = "versioned"
    with setup.admin() as admin:
        first = admin.post("/flows", json=document)
        assert first.status_code == 201 and first.json()["flow"]["version"] == 1
        again = admin.post("/flows", json=document)
        assert again.status_code == 200 and again.json()["changed"] is False
        document["description"] = "now with YAML"
        second = admin.post(
            "/flows",
            content=yaml.safe_dump(document),
            headers={"Content-Type": "application/yaml"},
        )
        assert second.status_code == 201, second.text
        assert second.json()["flow"]["version"] == 2
        versions = admin.get("/flows/versioned/versions").json()
        assert [v["version"] for v in versions] == [2, 1]
        card_versions = admin.get("/agents/versioned/versions").json()
        assert len(card_versions) == 2
        assert admin.get("/flows/versioned").json()["document"]["description"] == "now with YAML"


def test_the_schema_is_published_and_shipped_alike(setup: FlowSetup) -> None:
    with setup.gateway.anonymous() as anyone:
        served = anyone.get("/flows/schema")
    assert served.status_code == 200
    assert served.json() == json_schema() == shipped_schema()
    assert served.json()["$id"] == "urn:switchboard:schema:flow:v1"
    assert json.loads(
        Path(__file__).parents[2].joinpath("gateway/flows/flow.schema.json").read_text()
    )


def test_only_admins_register_flows(setup: FlowSetup) -> None:
    with setup.user() as dana:
        assert dana.post("/flows", json=QUOTE_FLOW).status_code == 403


def test_the_documented_example_is_the_tested_flow() -> None:
    example = Path(__file__).parents[2] / "examples" / "flows" / "quote-flow.yaml"
    assert yaml.safe_load(example.read_text()) == QUOTE_FLOW
