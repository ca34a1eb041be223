"""Registration's checks of a flow document (`gateway.flows.checks`) against
an in-memory catalog: every problem named with its step and field, and a
sound flow with none."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.flows.checks import check
from gateway.flows.definition import CallStep, FlowDocument
from gateway.flows.target_checks import AgentInfo, Problem, ToolInfo

QUOTE_CONTRACT = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
    "required": ["sku", "qty"],
    "additionalProperties": False,
}


@dataclass
class Catalog:
    agents: dict[str, AgentInfo] = field(
        default_factory=lambda: {
            "sales": AgentInfo(("quote", "order"), {"quote": QUOTE_CONTRACT}, False),
            "support": AgentInfo(("answer",), {}, False),
            "other-flow": AgentInfo(("run",), {}, True),
        }
    )
    tools: dict[str, ToolInfo] = field(
        default_factory=lambda: {
            "stock__count": ToolInfo(
                {"type": "object", "properties": {"sku": {"type": "string"}}},
                {"type": "object", "properties": {"count": {"type": "integer"}}},
            )
        }
    )
    idempotent_targets: set[str] = field(default_factory=lambda: {"stock__count"})
    calls: dict[str, set[str]] = field(default_factory=dict)

    async def agent(self, agent_id: str) -> AgentInfo | None:
        return self.agents.get(agent_id)

    async def tool(self, name: str) -> ToolInfo | None:
        return self.tools.get(name)

    def idempotent(self, step: CallStep, tool: ToolInfo | None) -> bool:
        return step.call.target in self.idempotent_targets

    async def flow_calls(self) -> dict[str, set[str]]:
        return {k: set(v) for k, v in self.calls.items()}


ORDER_INPUT = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}, "note": {}},
    "required": ["sku", "qty"],
}


def flow(*steps: dict[str, Any], **extra: Any) -> FlowDocument:
    return FlowDocument.model_validate(
        {
            "format": "switchboard.flow/v1",
            "id": "order-flow",
            "name": "order",
            "input": ORDER_INPUT,
            "steps": list(steps),
            **extra,
        }
    )


def problems(document: FlowDocument, catalog: Catalog | None = None) -> list[Problem]:
    return asyncio.run(check(document, catalog or Catalog()))


def said(found: list[Problem]) -> list[tuple[str | None, str]]:
    return [(p["step"], p["field"]) for p in found]


QUOTE = {
    "id": "quote",
    "call": {"agent": "sales", "skill": "quote"},
    "input": "{sku: input.sku, qty: input.qty}",
}


def test_a_sound_flow_has_no_problems() -> None:
    document = flow(
        {"id": "stock", "call": {"tool": "stock__count"}, "input": "{sku: input.sku}"},
        QUOTE,
        {
            "id": "route",
            "route": [{"when": "steps.stock.output.count > `0`", "goto": "tell"}, {"goto": "end"}],
        },
        {"id": "tell", "call": {"agent": "support"}, "message": "steps.quote.text"},
        output="steps.tell.text",
    )
    assert problems(document) == []


def test_a_step_id_used_twice_is_named_where_it_is_used_again() -> None:
    document = flow(
        QUOTE,
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {"id": "quote", "call": {"agent": "support"}, "message": "'a'"},
                    {"id": "b2", "call": {"agent": "support"}, "message": "'b'"},
                ]
            },
        },
    )
    assert said(problems(document)) == [("quote", "steps[1].parallel.branches[0].id")]


def test_an_expression_may_read_only_earlier_steps() -> None:
    document = flow(
        {"id": "first", "call": {"agent": "support"}, "message": "steps.later.text"},
        {"id": "later", "call": {"agent": "support"}, "message": "steps.nowhere.text"},
        {"id": "own", "call": {"agent": "support"}, "message": "steps.own.text"},
        {"id": "odd", "call": {"agent": "support"}, "message": "secrets.key"},
    )
    found = problems(document)
    assert [p["message"] for p in found] == [
        "step 'later' has not run yet when this one runs",
        "no step 'nowhere' in this flow",
        "step 'own' has not run yet when this one runs",
        "'secrets' is not known here: expressions read input, steps.<id> and run",
    ]
    assert said(found)[0] == ("first", "steps[0].message")


def test_a_branch_may_not_read_its_sibling() -> None:
    document = flow(
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {"id": "b1", "call": {"agent": "support"}, "message": "'a'"},
                    {"id": "b2", "call": {"agent": "support"}, "message": "steps.b1.text"},
                ]
            },
        },
    )
    assert said(problems(document)) == [("b2", "steps[0].parallel.branches[1].message")]


def test_an_expression_that_does_not_compile_is_named() -> None:
    found = problems(flow({"id": "s", "call": {"agent": "support"}, "message": "input.["}))
    assert said(found) == [("s", "steps[0].message")]
    assert found[0]["message"].startswith("not a JMESPath expression")


def test_routes_go_to_a_top_level_step_and_only_the_last_case_omits_when() -> None:
    document = flow(
        {"id": "a", "call": {"agent": "support"}, "message": "'x'"},
        {"id": "r", "route": [{"goto": "a"}, {"when": "`true`", "goto": "ghost"}]},
    )
    assert said(problems(document)) == [
        ("r", "steps[1].route[0].when"),
        ("r", "steps[1].route[1].goto"),
        # Back to an earlier step: a loop, bounded by max (`test_back_routes`).
        ("r", "steps[1].max"),
    ]


def test_a_quorum_larger_than_the_branches_is_refused() -> None:
    branches = [{"id": f"b{i}", "call": {"agent": "support"}, "message": "'x'"} for i in range(2)]
    document = flow({"id": "p", "parallel": {"branches": branches, "join": {"quorum": 3}}})
    assert said(problems(document)) == [("p", "steps[0].parallel.join.quorum")]


def test_targets_must_exist_and_a_skill_be_named_when_there_are_several() -> None:
    document = flow(
        {"id": "a", "call": {"agent": "ghost"}, "message": "'x'"},
        {"id": "b", "call": {"agent": "sales"}, "message": "'x'"},
        {"id": "c", "call": {"agent": "sales", "skill": "refund"}, "message": "'x'"},
        {"id": "d", "call": {"tool": "nope"}, "input": "input"},
        {"id": "e", "call": {"flow": "support"}, "message": "'x'"},
        {"id": "f", "call": {"tool": "stock__count"}, "message": "'x'"},
        {"id": "g", "call": {"agent": "sales", "skill": "quote"}, "message": "'x'"},
    )
    assert said(problems(document)) == [
        ("a", "steps[0].call.agent"),
        ("b", "steps[1].call.skill"),
        ("c", "steps[2].call.skill"),
        ("d", "steps[3].call.tool"),
        ("e", "steps[4].call.flow"),
        ("f", "steps[5].message"),
        ("g", "steps[6].input"),  # a skill with a contract takes an input
    ]


def test_retries_only_on_an_idempotent_target() -> None:
    document = flow(
        {"id": "a", "call": {"agent": "support"}, "message": "'x'", "retries": 2},
        {"id": "b", "call": {"tool": "stock__count"}, "input": "{sku: input.sku}", "retries": 2},
    )
    assert said(problems(document)) == [("a", "steps[0].retries")]


def test_a_mapping_must_produce_what_the_contract_wants() -> None:
    document = flow(
        {"id": "a", "call": {"agent": "sales", "skill": "quote"}, "input": "{sku: input.sku}"},
        {
            "id": "b",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.qty, qty: input.qty}",
        },
        {
            "id": "c",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.sku, qty: input.qty, extra: input.note}",
        },
        {"id": "d", "call": {"agent": "sales", "skill": "quote"}, "input": "'text'"},
        # The input's own shape: required fields it is known to have.
        {"id": "e", "call": {"agent": "sales", "skill": "quote"}, "input": "input"},
    )
    found = problems(document)
    assert said(found) == [
        ("a", "steps[0].input.qty"),
        ("b", "steps[1].input.sku"),
        ("c", "steps[2].input.extra"),
        ("d", "steps[3].input"),
    ]
    assert found[1]["message"] == "produces integer, the target's contract wants string"


def test_an_earlier_tools_output_schema_is_known_to_later_mappings() -> None:
    document = flow(
        {"id": "stock", "call": {"tool": "stock__count"}, "input": "{sku: input.sku}"},
        {
            "id": "q",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.sku, qty: steps.stock.output.count}",
        },
        {
            "id": "w",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: steps.stock.output.count, qty: `1`}",
        },
    )
    assert said(problems(document)) == [("w", "steps[2].input.sku")]


def test_a_webhook_key_is_never_read_from_the_runs_input() -> None:
    document = flow(
        {"id": "a", "call": {"agent": "support"}, "message": "'x'"},
        {"id": "paid", "wait": {"event": "payment", "key": "input.order_id"}},
        {"id": "paid2", "wait": {"event": "payment", "key": "steps.a.text"}},
    )
    found = problems(document)
    assert said(found) == [("paid", "steps[1].wait.key")]
    assert "chosen by whoever starts the run" in found[0]["message"]


def test_a_flow_that_would_call_itself_through_another_is_refused() -> None:
    catalog = Catalog()
    catalog.calls = {"other-flow": {"support", "order-flow"}}
    document = flow({"id": "a", "call": {"flow": "other-flow"}, "message": "'x'"})
    found = problems(document, catalog)
    assert said(found) == [("a", "steps[0].call.agent")]
    assert (
        found[0]["message"] == "flows would call in a cycle: order-flow -> other-flow -> order-flow"
    )
    catalog.calls = {"other-flow": {"support"}}
    assert problems(document, catalog) == []


def test_a_map_and_a_fallback_are_checked_as_calls() -> None:
    document = flow(
        {
            "id": "each",
            "map": {"over": "input.items", "call": {"agent": "ghost"}, "message": "item.name"},
        },
        {
            "id": "f",
            "call": {"agent": "support"},
            "message": "'x'",
            "fallback": {"agent": "support"},
        },
        {
            "id": "g",
            "call": {"agent": "support"},
            "message": "'x'",
            "fallback": {"agent": "nobody"},
        },
    )
    assert said(problems(document)) == [
        ("each", "steps[0].map.call.agent"),
        ("f", "steps[1].fallback"),
        ("g", "steps[2].fallback.agent"),
    ]
