"""The delegation core calling an A2A agent with the SDK's own client transport,
against a mock agent (`tests.support.mock_upstream`): what reaches the agent,
and how each of its failures reads to the caller, the breaker and the record.

The explanation of failures is the one the A2A door's calls use
(`gateway.agents.upstream_errors.explain_agent_failure`); the record is a
stand-in for the pipeline's."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from a2a.types import SendMessageRequest, StreamResponse, TaskState
from a2a.utils.errors import A2AError, TaskNotFoundError

from adapters.a2a import A2AUpstreams
from gateway.agents.upstream_errors import explain_agent_failure
from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.delegation.delegate import Delegate, Sending, Streaming
from gateway.delegation.resilience import Resilience
from gateway.delegation.retry import RetrySettings
from gateway.delegation.upstream_failures import (
    UpstreamBadAnswerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from tests.gateway.delegation.test_delegate import Records
from tests.support.mock_upstream import (
    TASK_NOT_FOUND,
    MockAgent,
    a_task,
    status_update,
    text_message,
)

AGENT = "agent-1"
TOKEN = "minted.for.agent-1"


def core(threshold: int = 5) -> tuple[Delegate, Records]:
    records = Records()
    resilience = Resilience(
        Breakers(BreakerSettings(threshold=threshold, cooldown_seconds=60)),
        RetrySettings(attempts=3, base_delay_seconds=0, max_delay_seconds=0),
    )
    return Delegate(records, resilience), records  # type: ignore[arg-type]


def ask(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=text_message(text))


def sending(agent: MockAgent, text: str, *, idempotent: bool = False) -> Sending[Any]:
    transport = agent.transport()
    context = A2AUpstreams.context(TOKEN, 5.0)
    return Sending(
        upstream=AGENT,
        attempt=lambda: transport.send_message(ask(text), context=context),
        explain=functools.partial(explain_agent_failure, AGENT, 5.0),
        idempotent=idempotent,
    )


def send(delegate: Delegate, agent: MockAgent, text: str = "hi", **how: Any) -> Any:
    return asyncio.run(delegate.send(None, "a2a.SendMessage", sending(agent, text, **how)))  # type: ignore[arg-type]


def test_the_agent_gets_the_minted_token_and_nothing_of_the_callers() -> None:
    """The token rides in the call's context (`A2AUpstreams.context`), not in
    a header the shared client keeps. (`A2A-Version` is the gateway's pool's
    default header, `adapters.a2a`: the e2e tests see it arrive.)"""
    delegate, records = core()
    agent = MockAgent()
    answer = send(delegate, agent, "hello")
    assert answer.message.parts[0].text == "hello"
    [seen] = agent.seen
    assert seen.method == "SendMessage"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert "cookie" not in seen.headers and "a2a-version" not in seen.headers
    assert records.written == [("ok", None)]


def test_a_task_answer_is_passed_on_and_can_be_read_back() -> None:
    delegate, _ = core()
    agent = MockAgent()
    task = a_task(TaskState.TASK_STATE_WORKING, "on it")
    agent.then(agent.task(task))
    answer = send(delegate, agent)
    assert answer.task.id == task.id and answer.task.status.state == TaskState.TASK_STATE_WORKING
    assert agent.tasks[task.id] is task


def test_a_503_is_retried_for_an_idempotent_call_and_the_record_says_so() -> None:
    delegate, records = core()
    agent = MockAgent().then(MockAgent.status(503), MockAgent.status(503))
    assert send(delegate, agent, "again", idempotent=True).message.parts[0].text == "again"
    assert len(agent.seen) == 3
    assert records.written == [("ok", "after 3 attempts")]


def test_a_503_is_not_retried_otherwise_and_reads_as_the_agents_bad_answer() -> None:
    delegate, records = core()
    agent = MockAgent().then(MockAgent.status(503))
    with pytest.raises(UpstreamBadAnswerError, match="agent agent-1 answered HTTP 503"):
        send(delegate, agent)
    assert len(agent.seen) == 1
    assert records.written == [
        ("a2a_error:InvalidAgentResponseError", "agent agent-1 answered HTTP 503")
    ]


def test_an_unreachable_agent_opens_its_breaker_and_is_then_not_called() -> None:
    delegate, records = core(threshold=2)
    agent = MockAgent().then(MockAgent.unreachable(), MockAgent.unreachable())
    for _ in range(2):
        with pytest.raises(UpstreamUnavailableError, match="could not be reached"):
            send(delegate, agent)
    with pytest.raises(UpstreamUnavailableError, match="circuit breaker is open"):
        send(delegate, agent)
    assert len(agent.seen) == 2  # the third call never left the gateway
    assert [outcome for outcome, _ in records.written] == ["a2a_error:InternalError"] * 3


def test_a_timeout_says_the_limit() -> None:
    delegate, _ = core()
    agent = MockAgent().then(MockAgent.slow())
    with pytest.raises(UpstreamTimeoutError, match="did not answer within 5 s"):
        send(delegate, agent)


def test_the_agents_own_error_reaches_the_caller_with_its_code_and_trips_nothing() -> None:
    delegate, records = core(threshold=1)
    agent = MockAgent().then(*[MockAgent.error(TASK_NOT_FOUND, "no such task")] * 3)
    for _ in range(3):
        with pytest.raises(TaskNotFoundError):
            send(delegate, agent)
    assert len(agent.seen) == 3  # an answer is not a failure of the agent
    assert records.written[-1] == ("a2a_error:TaskNotFoundError", "no such task")


def test_a_stream_is_passed_through_and_recorded_once_at_its_end() -> None:
    delegate, records = core()
    agent = MockAgent(streaming=True)
    task = a_task(TaskState.TASK_STATE_SUBMITTED)
    agent.then(
        agent.events(
            StreamResponse(task=task),
            status_update(task, TaskState.TASK_STATE_WORKING),
            status_update(task, TaskState.TASK_STATE_COMPLETED, "done"),
        )
    )
    transport = agent.transport()
    context = A2AUpstreams.context(TOKEN, None)

    def opened() -> AsyncIterator[StreamResponse]:
        return transport.send_message_streaming(ask("go"), context=context)

    streaming: Streaming[StreamResponse] = Streaming(
        upstream=AGENT,
        open=opened,
        explain=functools.partial(explain_agent_failure, AGENT, None),
        max_seconds=5,
    )

    async def drain() -> list[StreamResponse]:
        return [e async for e in delegate.stream(None, "a2a.SendStreamingMessage", streaming)]  # type: ignore[arg-type]

    events = asyncio.run(drain())
    assert [e.WhichOneof("payload") for e in events] == ["task", "status_update", "status_update"]
    assert events[-1].status_update.status.message.parts[0].text == "done"
    assert agent.seen[0].method == "SendStreamingMessage"
    assert records.written == [("ok", None)]


def test_a_stream_the_agent_refuses_reads_as_its_error() -> None:
    delegate, records = core()
    agent = MockAgent(streaming=True).then(MockAgent.status(502))
    transport = agent.transport()
    streaming: Streaming[StreamResponse] = Streaming(
        upstream=AGENT,
        open=lambda: transport.send_message_streaming(ask("go")),
        explain=functools.partial(explain_agent_failure, AGENT, None),
        max_seconds=5,
    )

    async def drain() -> None:
        async for _ in delegate.stream(None, "a2a.SendStreamingMessage", streaming):  # type: ignore[arg-type]
            pass

    with pytest.raises(A2AError, match="agent agent-1"):
        asyncio.run(drain())
    assert len(records.written) == 1 and records.written[0][0].startswith("a2a_error:")
