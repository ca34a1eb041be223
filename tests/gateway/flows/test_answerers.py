"""What an expression's value answers, and the checkpoint a reviewer's
question becomes (`gateway.flows.answerers`)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.flows.answerers import as_reply, question_step
from gateway.flows.call_definition import CallTarget, Questions
from gateway.flows.definition import CallStep, MapStep, ParallelStep
from gateway.flows.documents import validate
from gateway.flows.outcomes import asking
from gateway.flows.target_checks import as_item_call


@pytest.mark.parametrize(
    ("value", "reply"),
    [
        ("north", {"text": "north"}),
        ({"warehouse": "north"}, {"data": {"warehouse": "north"}}),
        # No answer: the question goes on to whoever `to` names.
        (None, None),
        ("", None),
        ({}, None),
        ("  ", None),
        ([], None),
    ],
)
def test_an_expressions_value_as_an_answer(value: Any, reply: dict[str, Any] | None) -> None:
    assert as_reply(value) == reply


@pytest.mark.parametrize("value", [3, 2.5, 0, 0.0, True, False, ["north"]])
def test_a_value_that_is_neither_words_nor_an_object_is_no_answer(value: Any) -> None:
    with pytest.raises(ValueError, match="a string or an object"):
        as_reply(value)


def test_a_reviewers_question_is_a_checkpoint_no_step_id_can_name() -> None:
    step = CallStep(id="ship", call=CallTarget(agent="sales", skill="ship"))
    outcome = asking("Which warehouse?", {"options": ["north"]}, "sales", "input_required", "s1")
    ask = question_step(step, 2, outcome, "ab12cd")
    assert ask.id == "ship:question2.ab12cd"
    assert "sales asks: Which warehouse?" in ask.checkpoint.prompt
    assert ask.checkpoint.prompt.endswith("approve with your answer, or reject to end the run.")
    long = CallStep(id="s" * 64, call=CallTarget(agent="sales", skill="ship"))
    assert len(question_step(long, 10, outcome, "ab12cd").id) <= 64


def test_a_branch_and_a_maps_items_take_questions() -> None:
    call = {"call": {"agent": "sales", "skill": "ship"}, "questions": {"to": "fail"}}
    document = {
        "format": "switchboard.flow/v1",
        "id": "f",
        "name": "f",
        "steps": [
            {"id": "p", "parallel": {"branches": [{"id": "a", **call}, {"id": "b", **call}]}},
            {"id": "m", "map": {"over": "input.orders", **call}},
        ],
    }
    checked = validate(document)
    parallel, mapped = checked.steps
    assert isinstance(parallel, ParallelStep) and isinstance(mapped, MapStep)
    branch = parallel.parallel.branches[0]
    assert isinstance(branch, CallStep) and branch.questions == Questions(to="fail")
    # Each item's call asks as the map says.
    assert as_item_call(mapped, "m[0]").questions == Questions(to="fail")
