"""The A2A TCK runner's own logic, without a TCK: reading junit reports,
comparing them, the skip without a checkout, and the 1.x adaptation of the
reference executor (`conformance.tck_agent.TaskFirst`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from a2a.helpers import new_text_message
from a2a.server.events import EventQueue
from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskState, TaskStatus, TaskStatusUpdateEvent

from conformance.a2a import Difference, differences, main, read_junit, tally
from conformance.tck_agent import TaskFirst

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
  <testcase classname="tests.compatibility.a.TestA" name="test_ok[jsonrpc]"/>
  <testcase classname="tests.compatibility.a.TestA" name="test_bad[http_json]">
    <failure message="boom"/></testcase>
  <testcase classname="tests.compatibility.a.TestA" name="test_broken[jsonrpc]">
    <error message="fixture"/></testcase>
  <testcase classname="tests.compatibility.b.TestB" name="test_grpc[grpc]">
    <skipped message="filtered"/></testcase>
</testsuite></testsuites>
"""


def test_a_junit_report_is_one_outcome_per_test(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)
    results = read_junit(report)
    assert results == {
        "tests.compatibility.a.TestA::test_ok[jsonrpc]": "passed",
        "tests.compatibility.a.TestA::test_bad[http_json]": "failed",
        "tests.compatibility.a.TestA::test_broken[jsonrpc]": "failed",
        "tests.compatibility.b.TestB::test_grpc[grpc]": "skipped",
    }
    assert tally(results) == (1, 2, 1)


def test_differences_name_every_test_whose_outcome_changed() -> None:
    direct = {"a": "passed", "b": "failed", "c": "skipped", "d": "passed"}
    through = {"a": "passed", "b": "passed", "c": "skipped", "e": "skipped"}
    assert differences(direct, through) == [
        Difference("b", "failed", "passed"),
        Difference("d", "passed", "missing"),
        Difference("e", "missing", "skipped"),
    ]


def test_without_a_checkout_it_skips_and_succeeds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TCK_DIR", raising=False)
    assert main([]) == 0
    assert "skipped" in capsys.readouterr().out


def test_a_directory_that_is_no_tck_is_refused(tmp_path: Path) -> None:
    assert main(["--tck-dir", str(tmp_path)]) == 2


class Sink(EventQueue):
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def enqueue_event(self, event: Event) -> None:
        self.events.append(event)


TASK = Task(id="t", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED))


async def test_the_task_goes_ahead_of_the_first_status_update() -> None:
    sink = Sink()
    queue = TaskFirst(sink, TASK)
    update = TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_WORKING)
    )
    await queue.enqueue_event(update)
    await queue.enqueue_event(update)
    assert sink.events == [TASK, update, update]


async def test_a_message_answer_gets_no_task() -> None:
    sink = Sink()
    message = new_text_message("hello")
    await TaskFirst(sink, TASK).enqueue_event(message)
    assert sink.events == [message]
