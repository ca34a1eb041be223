"""`gateway.delegation.handoffs`: the one function that decides a message's
skill, read from the caller's JSON and from the parsed request alike, and the
stamping that makes the upstream see that skill and no other."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.types import SendMessageRequest
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.delegation.call import MessageSkill
from gateway.delegation.handoffs import (
    check_contract,
    checked_skill,
    json_places,
    json_task_id,
    message_skill,
    proto_places,
    skill_of,
    stamp_skill,
)
from gateway.delegation.tasks import Owner

CARD = {"skills": [{"id": "read"}, {"id": "adminop"}]}
ONE = {"skills": [{"id": "read"}]}
ABSENT = object()


def params(
    request_skill: Any = ABSENT, message_skill: Any = ABSENT, part_skill: Any = ABSENT
) -> dict[str, Any]:
    message: dict[str, Any] = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}
    body: dict[str, Any] = {"message": message}
    if part_skill is not ABSENT:
        message["parts"].append({"text": "y", "metadata": {"skill": part_skill}})
    if message_skill is not ABSENT:
        message["metadata"] = {"skill": message_skill, "other": 1}
    if request_skill is not ABSENT:
        body["metadata"] = {"skill": request_skill}
    return body


def decide(card: dict[str, Any], body: dict[str, Any]) -> str | None:
    return skill_of("ops", card, json_places(body))


@pytest.mark.parametrize(
    ("request_skill", "message_skill", "expected"),
    [
        (ABSENT, ABSENT, None),
        ("read", ABSENT, "read"),
        (ABSENT, "adminop", "adminop"),
        ("adminop", "adminop", "adminop"),
    ],
)
def test_every_place_names_the_same_skill(
    request_skill: Any, message_skill: Any, expected: str | None
) -> None:
    assert decide(CARD, params(request_skill, message_skill)) == expected


@pytest.mark.parametrize(
    ("request_skill", "message_skill", "says"),
    [
        ("read", "adminop", "more than one skill"),
        ("adminop", "read", "more than one skill"),
        (None, "adminop", "must be a string"),  # no longer "the first place wins"
        ("read", ["adminop"], "must be a string"),
        ("nope", ABSENT, "no skill 'nope'"),
        ("nope", "nope", "no skill 'nope'"),
    ],
)
def test_places_that_disagree_or_name_no_skill_of_the_card_are_refused(
    request_skill: Any, message_skill: Any, says: str
) -> None:
    with pytest.raises(InvalidParamsError, match=says) as refused:
        decide(CARD, params(request_skill, message_skill))
    assert refused.value.data is not None and "field" in refused.value.data


def test_an_agent_with_one_skill_gets_it_unsaid() -> None:
    assert decide(ONE, params()) == "read"
    with pytest.raises(InvalidParamsError):
        decide(ONE, params("adminop"))


def test_the_0_3_proto_name_of_the_message_is_a_place_too() -> None:
    body = params("read")
    body["request"] = body.pop("message")
    body["request"]["metadata"] = {"skill": "adminop"}
    with pytest.raises(InvalidParamsError, match=r"params\.request\.metadata\.skill"):
        decide(CARD, body)


def _parsed(body: dict[str, Any]) -> SendMessageRequest:
    parsed: SendMessageRequest = ParseDict(body, SendMessageRequest())
    return parsed


def test_the_parsed_request_is_stamped_with_the_checked_skill() -> None:
    body = params("read")
    body["message"]["metadata"] = {"other": 1}
    parsed = _parsed(body)
    assert checked_skill("ops", CARD, "read", parsed, task_id=None) == "read"
    stamped = MessageToDict(parsed)
    assert stamped["metadata"]["skill"] == stamped["message"]["metadata"]["skill"] == "read"
    assert stamped["message"]["metadata"]["other"] == 1  # the rest is left alone
    # Admitted for a skill the parsed request does not name: stamped all the same.
    parsed = _parsed(params())
    assert checked_skill("ops", CARD, "read", parsed, task_id=None) == "read"
    assert MessageToDict(parsed)["message"]["metadata"] == {"skill": "read"}


def test_a_parsed_request_naming_another_skill_than_admitted_is_refused() -> None:
    for admitted in ("read", None):
        with pytest.raises(InvalidParamsError, match="admitted for"):
            checked_skill("ops", CARD, admitted, _parsed(params(ABSENT, "adminop")), task_id=None)


def test_naming_none_stays_naming_none() -> None:
    parsed = _parsed(params())
    assert checked_skill("ops", CARD, None, parsed, task_id=None) is None
    assert "metadata" not in MessageToDict(parsed)
    parsed = _parsed(params())
    stamp_skill(parsed, "read")
    stamp_skill(parsed, None)
    assert all(m is None or "skill" not in m for _, m in proto_places(parsed))


VALUES = st.sampled_from([ABSENT, ABSENT, "read", "adminop", "nope", "", None, 3, True])


@settings(max_examples=200, deadline=None)
@given(
    request_skill=VALUES,
    message_skill=VALUES,
    part_skill=VALUES,
    card=st.sampled_from([CARD, ONE]),
)
def test_the_callers_json_and_the_parsed_request_are_decided_alike(
    request_skill: Any, message_skill: Any, part_skill: Any, card: dict[str, Any]
) -> None:
    """The front door decides from the JSON, the handler checks the parsed
    request: the two readings agree, and a stamped request names the decided
    skill in every place."""
    body = params(request_skill, message_skill, part_skill)
    try:
        from_json: Any = decide(card, body)
    except InvalidParamsError:
        from_json = InvalidParamsError
    parsed = _parsed(body)
    try:
        from_proto: Any = skill_of("ops", card, proto_places(parsed))
    except InvalidParamsError:
        from_proto = InvalidParamsError
    assert from_json == from_proto
    if from_json is InvalidParamsError:
        return
    assert checked_skill("ops", card, from_json, parsed, task_id=None) == from_json
    named = {m["skill"] for _, m in proto_places(parsed) if m is not None and "skill" in m}
    assert named == ({from_json} if from_json is not None else set())
    if from_json is not None:
        assert all(m is not None for _, m in proto_places(parsed))


# A part's metadata is a place too -------------------------------------------------


def test_a_part_naming_another_skill_is_refused_from_the_json_and_the_parsed_request() -> None:
    body = params("read")
    body["message"]["parts"] = [{"text": "x"}, {"text": "y", "metadata": {"skill": "adminop"}}]
    with pytest.raises(InvalidParamsError, match=r"params\.message\.parts\[1\]\.metadata\.skill"):
        decide(CARD, body)
    with pytest.raises(InvalidParamsError, match="more than one skill"):
        checked_skill("ops", CARD, "read", _parsed(body), task_id=None)
    body = params()
    body["message"]["parts"] = [{"text": "y", "metadata": {"skill": "adminop"}}]
    with pytest.raises(InvalidParamsError, match="admitted for 'read'"):
        checked_skill("ops", CARD, "read", _parsed(body), task_id=None)
    # The 0.3 proto's `content` and `request` are read too.
    legacy: dict[str, Any] = {
        "request": {"content": [{"text": "x", "metadata": {"skill": "adminop"}}]}
    }
    legacy["metadata"] = {"skill": "read"}
    with pytest.raises(InvalidParamsError, match=r"params\.request\.content\[0\]"):
        decide(CARD, legacy)


def test_a_part_naming_the_decided_skill_is_the_skill_named() -> None:
    body = params()
    body["message"]["parts"] = [{"text": "x", "metadata": {"skill": "adminop", "lang": "en"}}]
    assert decide(CARD, body) == "adminop"
    parsed = _parsed(body)
    assert checked_skill("ops", CARD, "adminop", parsed, task_id=None) == "adminop"
    stamped = MessageToDict(parsed)
    assert stamped["metadata"]["skill"] == stamped["message"]["metadata"]["skill"] == "adminop"
    assert stamped["message"]["parts"][0]["metadata"] == {"skill": "adminop", "lang": "en"}


# Which task a message continues ------------------------------------------------------


def test_a_task_id_is_read_under_every_spelling_and_two_are_refused() -> None:
    assert json_task_id(params()) is None
    assert json_task_id({"message": {"taskId": ""}}) is None
    assert json_task_id({"message": {"taskId": "t1"}}) == "t1"
    assert json_task_id({"message": {"task_id": "t1", "taskId": "t1"}}) == "t1"
    assert json_task_id({"request": {"taskId": "t1"}}) == "t1"
    assert json_task_id({"message": {"taskId": None}}) is None
    for body in (
        {"message": {"taskId": "t1", "task_id": "t2"}},
        {"message": {"taskId": "t1", "task_id": ""}},  # protobuf keeps the last
        {"message": {"taskId": "t1", "task_id": None}},  # null clears it
        {"message": {"taskId": "t1"}, "request": {"taskId": "t2"}},
    ):
        with pytest.raises(InvalidParamsError, match="more than one task"):
            json_task_id(body)


def test_the_parsed_request_must_continue_the_task_it_was_admitted_for() -> None:
    body = params("read")
    body["message"]["taskId"] = "t1"
    assert checked_skill("ops", CARD, "read", _parsed(body), task_id="t1") == "read"
    for admitted in (None, "t2"):
        with pytest.raises(InvalidParamsError, match="continues task 't1'"):
            checked_skill("ops", CARD, "read", _parsed(body), task_id=admitted)
    with pytest.raises(InvalidParamsError, match="continues task None"):
        checked_skill("ops", CARD, "read", _parsed(params("read")), task_id="t1")


class _Tasks:
    """`TaskRecords.skill_of` over a dict: (agent, owner, task) -> skill."""

    def __init__(self, recorded: dict[tuple[str, Owner, str], str | None]) -> None:
        self.recorded = recorded

    async def skill_of(self, agent_id: str, owner: Owner, task_id: str) -> tuple[bool, str | None]:
        key = (agent_id, owner, task_id)
        return (key in self.recorded, self.recorded.get(key))


ALICE, BOB = Owner("alice", "iss"), Owner("bob", "iss")
TASKS = _Tasks({("ops", ALICE, "admin-task"): "adminop", ("ops", ALICE, "old-task"): None})


async def _for(owner: Owner, task_id: str | None, *named: Any) -> MessageSkill:
    body = params(*named)
    tasks: Any = TASKS
    return await message_skill(tasks, "ops", CARD, owner, json_places(body), task_id)


async def test_a_continuation_is_for_the_tasks_skill() -> None:
    assert await _for(ALICE, "admin-task") == MessageSkill("adminop", "admin-task")
    assert await _for(ALICE, "admin-task", "adminop") == MessageSkill("adminop", "admin-task")
    for named in (("read",), ("adminop", "read"), (ABSENT, "read"), (None,)):
        with pytest.raises(InvalidParamsError, match="task admin-task is a task of skill"):
            await _for(ALICE, "admin-task", *named)


async def test_a_task_recorded_for_no_skill_is_continued_as_for_the_strictest() -> None:
    assert await _for(ALICE, "old-task") == MessageSkill(None, "old-task", strictest=True)
    assert await _for(ALICE, "old-task", "read") == MessageSkill("read", "old-task", True)


async def test_someone_elses_task_is_decided_as_a_new_message_and_says_nothing() -> None:
    # Bob learns nothing of Alice's task here: the handler answers "not found".
    assert await _for(BOB, "admin-task", "read") == MessageSkill("read", "admin-task")
    assert await _for(ALICE, None, "read") == MessageSkill("read")


# Contracts for a message naming no skill ------------------------------------------------

SCHEMA = {"type": "object", "required": ["sku"]}


def test_a_message_naming_no_skill_to_an_agent_with_a_contracted_skill_is_refused() -> None:
    contracts = {"adminop": SCHEMA}
    message = _parsed(params()).message
    with pytest.raises(InvalidParamsError, match="name the skill") as refused:
        check_contract("ops", CARD, contracts, None, message)
    assert refused.value.data is not None and refused.value.data["skills"] == ["adminop"]
    # A skill named: its own contract, or none.
    check_contract("ops", CARD, contracts, "read", message)
    with pytest.raises(InvalidParamsError, match="has none"):
        check_contract("ops", CARD, contracts, "adminop", message)
    # Continuing a task: the agent already accepted it.
    body = params()
    body["message"]["taskId"] = "t1"
    check_contract("ops", CARD, contracts, None, _parsed(body).message)
    # No contract on any of the card's skills: nothing to check.
    check_contract("ops", CARD, {}, None, message)
    check_contract("ops", CARD, {"gone": SCHEMA}, None, message)
