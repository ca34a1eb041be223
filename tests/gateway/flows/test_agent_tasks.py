"""`gateway.flows.agent_tasks`: after an answer, a task still showing the
question answered is not taken for a new one, and a new question is seen as
new -- also from an agent whose statuses carry no message id or time (a
stand-in handler: the unit of one piece)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from a2a.types import Message, Part, Role, Task, TaskState, TaskStatus

from gateway.flows.agent_tasks import AgentTask, status_key
from gateway.flows.step_errors import StepFailed


def _task(state: TaskState, text: str = "") -> Task:
    message = Message(role=Role.ROLE_AGENT, parts=[Part(text=text)]) if text else None
    status = TaskStatus(state=state, message=message) if message else TaskStatus(state=state)
    return Task(id="t1", context_id="c1", status=status)


class Handler:
    def __init__(self, *answers: Task) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def task(self, admission: Any, task_id: str) -> Task:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def _follow(handler: Handler, answered: str | None) -> dict[str, Any]:
    settings = types.SimpleNamespace(poll_min_seconds=0.001, poll_max_seconds=0.002)
    rt: Any = types.SimpleNamespace(settings=settings)

    async def remember(**_: Any) -> None:
        return None

    stand_in: Any = handler
    admission: Any = None  # the stand-in's operations read none
    agent = AgentTask(rt, "run", "agent", "agent", stand_in, admission, remember, answered=answered)
    async with asyncio.timeout(5):
        return await agent.follow("t1")


def test_a_new_question_without_ids_is_told_apart_by_its_words() -> None:
    first = _task(TaskState.TASK_STATE_INPUT_REQUIRED, "which size?")
    second = _task(TaskState.TASK_STATE_INPUT_REQUIRED, "which colour?")
    assert status_key(first) != status_key(second)
    handler = Handler(first, first, second)
    outcome = asyncio.run(_follow(handler, status_key(first)))
    assert outcome["state"] == "input_required" and outcome["text"] == "which colour?"
    assert handler.asked == 3  # the answered question seen twice was waited past


def test_the_same_words_again_count_once_the_agent_was_seen_working() -> None:
    asked = _task(TaskState.TASK_STATE_INPUT_REQUIRED, "which size?")
    working = _task(TaskState.TASK_STATE_WORKING)
    handler = Handler(asked, working, asked)
    outcome = asyncio.run(_follow(handler, status_key(asked)))
    assert outcome["state"] == "input_required" and outcome["text"] == "which size?"
    assert handler.asked == 3


def test_a_task_that_ends_is_its_outcome() -> None:
    asked = _task(TaskState.TASK_STATE_INPUT_REQUIRED, "which size?")
    failed = _task(TaskState.TASK_STATE_FAILED, "no stock")
    with pytest.raises(StepFailed, match="no stock"):
        asyncio.run(_follow(Handler(asked, failed), status_key(asked)))
