"""A `wait` for a task learns of its state from the agent itself (SQLite and
PostgreSQL): nobody looks at the task -- no `GetTask`, no stream of the
user's -- and the run goes on anyway, woken by what the gateway, following the
task as the run's user, recorded: on the agent's stream (`SubscribeToTask`)
when it streams, else by `GetTask`. A state that is not an end
(``input_required``) wakes it too. The slow poll of the record is set to an
hour, so a run that went on at all did not learn by it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.types import AgentCard

from gateway.demo.flow_agents import SalesDesk, sales_card, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

# The runs' slow poll of the record (flow_checkpoint_poll_seconds): an hour,
# so a run that goes on within a test's wait (`WITHIN`) was woken.
POLL_WOULD_TAKE = 3600.0
WITHIN = 60.0
ENDED = ("completed", "failed")


def waiting_flow(flow_id: str, agent: str = "sales", **wait: Any) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id,
        "name": "Wait for the user's task",
        "input": {"type": "object", "properties": {"task": {"type": "string"}}},
        "steps": [{"id": "worked", "wait": {"task": {"agent": agent, "id": "input.task"}, **wait}}],
        "output": "steps.worked.output",
    }


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY.replace(
        "  inventory:\n",
        "  plain:\n    require: [sales:quote]\n    grant: [sales:quote]\n  inventory:\n",
    )
    policy += "".join(
        f"  {flow}:\n    grant: [sales:quote]\n"
        for flow in ("await-end", "await-ask", "await-plain")
    )
    with flow_setup(
        tmp_path, database_url, policy, flow_checkpoint_poll_seconds=POLL_WOULD_TAKE
    ) as made:
        yield made


def _rpc(client: httpx.Client, agent: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = client.post(f"/a2a/{agent}", json=body, headers={"A2A-Version": "1.0"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    assert "result" in found, found
    result: dict[str, Any] = found["result"]
    return result


def _work(client: httpx.Client, agent: str = "sales", **data: Any) -> str:
    """A task answered at once while it works; its id. Nobody looks at it again."""
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": [{"data": data}],
        "metadata": {"skill": "work"},
    }
    params = {"message": message, "configuration": {"returnImmediately": True}}
    task: dict[str, Any] = _rpc(client, agent, "SendMessage", params)["task"]
    assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING"), task
    task_id: str = task["id"]
    return task_id


def _run(setup: FlowSetup, client: httpx.Client, flow_id: str, task_id: str) -> dict[str, Any]:
    started = client.post(f"/flows/{flow_id}/runs", json={"input": {"task": task_id}})
    assert started.status_code == 202, started.text
    done = setup.run(client, started.json(), "completed", "failed", seconds=WITHIN)
    return done


def _calls(setup: FlowSetup, agent: str, operation: str) -> list[dict[str, Any]]:
    with setup.admin() as admin:
        page = admin.get("/audit", params={"agent": agent, "limit": 200})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return [i for i in items if i["event"] == f"a2a.{operation}"]


def test_the_end_comes_from_the_agents_stream_with_nobody_looking(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow("await-end")).status_code == 201
    with setup.user() as dana:
        task_id = _work(dana, seconds=1.5)
        done = _run(setup, dana, "await-end", task_id)
    assert done["state"] == "completed", done
    # The result is the agent's artifact, kept from the stream's artifact update.
    assert done["output"]["result"] == {"worked": 1.5}, done
    assert done["output"]["state"] == "completed"
    # Followed as the run's user, on a subscription of theirs to that task.
    followed = _calls(setup, "sales", "SubscribeToTask")
    assert followed, "the task was not followed on the agent's stream"
    assert {r["subject"] for r in followed} == {"dana"}
    assert not _calls(setup, "sales", "GetTask")
    assert setup.desk.count("work") == 1  # followed, never sent again


def test_a_question_is_learnt_from_the_agent_as_an_end_is(setup: FlowSetup) -> None:
    flow = waiting_flow("await-ask", states=["input_required"])
    assert setup.register(flow).status_code == 201
    with setup.user() as dana:
        task_id = _work(dana, seconds=1.0, then="ask")
        done = _run(setup, dana, "await-ask", task_id)
    assert done["state"] == "completed", done
    assert done["output"]["state"] == "input_required", done
    assert done["output"]["text"] == "Worked 1 s: go on?"


def test_an_agent_that_does_not_stream_is_followed_with_get_task(setup: FlowSetup) -> None:
    with _plain_agent(setup):
        with setup.user() as dana:
            task_id = _work(dana, agent="plain", seconds=1.0)
            done = _run(setup, dana, "await-plain", task_id)
        assert done["state"] == "completed", done
        assert done["output"]["result"] == {"worked": 1.0}
        looks = _calls(setup, "plain", "GetTask")
        assert looks and {r["subject"] for r in looks} == {"dana"}
        assert not _calls(setup, "plain", "SubscribeToTask")


@contextlib.contextmanager
def _plain_agent(setup: FlowSetup, pushes: bool = False) -> Iterator[None]:
    """The sales desk again as the agent ``plain``, whose card says it does
    not stream (and whether it pushes), with a flow that waits on its task."""

    def card(url: str) -> AgentCard:
        found = sales_card(url)
        found.capabilities.streaming = False
        found.capabilities.push_notifications = pushes
        return found

    plain = ServerThread(lambda url: sales_desk_app(url, setup.desk, card(url))).start()
    try:
        with setup.admin() as admin:
            body = {"card_url": plain.url + "/.well-known/agent-card.json", "id": "plain"}
            assert admin.post("/agents", json=body).status_code == 201
        assert setup.register(waiting_flow("await-plain", agent="plain")).status_code == 201
        yield
    finally:
        stop_all(plain)


def test_an_agent_that_pushes_is_watched_not_asked_again(setup: FlowSetup) -> None:
    """A non-streaming agent that sends push notifications: the gateway puts
    a watch of its own on the task (a relay that records and forwards
    nothing), the agent's push of the end wakes the run, and the task is
    asked about once -- not every few seconds. The watch is gone after the
    wait, and the user never saw it among the task's configs."""
    with _plain_agent(setup, pushes=True):
        with setup.user() as dana:
            task_id = _work(dana, agent="plain", seconds=4.0)
            started = dana.post("/flows/await-plain/runs", json={"input": {"task": task_id}})
            assert started.status_code == 202, started.text
            run = started.json()
            # While the run waits: the watch is there, and not the user's to see.
            wait_for(
                lambda: _calls(setup, "plain", "CreateTaskPushNotificationConfig"),
                10,
                every=0.1,
                what="the task watched",
            )
            listed = _rpc(dana, "plain", "ListTaskPushNotificationConfigs", {"taskId": task_id})
            assert listed.get("configs", []) == [], listed
            # Nor can the user take a watch's id (to replace it with their webhook).
            taken = {
                "taskId": task_id,
                "id": "switchboard-watch-mine",
                "url": "https://hooks.example.com/push",
            }
            create: dict[str, Any] = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "CreateTaskPushNotificationConfig",
            }
            refused = dana.post(
                "/a2a/plain", json={**create, "params": taken}, headers={"A2A-Version": "1.0"}
            )
            assert "switchboard-watch-" in refused.json()["error"]["message"], refused.text
            done = setup.run(dana, run, "completed", "failed", seconds=WITHIN)
        assert done["state"] == "completed", done
        assert done["output"]["result"] == {"worked": 4.0}
        watched = _calls(setup, "plain", "CreateTaskPushNotificationConfig")
        assert [(r["subject"], r["outcome"]) for r in watched] == [("dana", "ok")], watched
        # One look when the watch began; the 4 s of work were not polled.
        assert len(_calls(setup, "plain", "GetTask")) == 1
        # The watch removed once the wait was over.
        wait_for(
            lambda: _calls(setup, "plain", "DeleteTaskPushNotificationConfig"),
            10,
            every=0.1,
            what="the watch removed",
        )


@pytest.mark.crash
def test_a_run_recovered_after_a_sigkill_follows_the_task_again(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway killed while a run waits and follows the task: started
    again, the recovered run follows it anew, and goes on when the agent's
    task ends -- nobody looking at it, the slow poll an hour away."""
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "  await-end:\n    grant: [sales:quote]\n")
    gateway = GatewayProcess(
        tmp_path / "data",
        database_url=database_url,
        policy_file=policy,
        settings={"flow_checkpoint_poll_seconds": POLL_WOULD_TAKE},
    )
    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            card = sales.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card, "id": "sales"}).status_code == 201
            assert admin.post("/flows", json=waiting_flow("await-end")).status_code == 201
        with gateway.client("dana", "sales:quote") as dana:
            task_id = _work(dana, seconds=4.0)
            started = dana.post("/flows/await-end/runs", json={"input": {"task": task_id}})
            assert started.status_code == 202, started.text
            run_url = f"/flows/await-end/runs/{started.json()['id']}"
            wait_for(
                lambda: [s["state"] for s in dana.get(run_url).json()["steps"]] == ["waiting"],
                20,
                what="the run waiting",
            )
        gateway.kill()
        gateway.start()
        with gateway.client("dana", "sales:quote") as dana:
            done = wait_for(
                lambda: seen if (seen := dana.get(run_url).json())["state"] in ENDED else None,
                seconds=WITHIN,
                every=0.1,
                what=lambda: dana.get(run_url).json(),
            )
        assert done["state"] == "completed", done
        assert done["output"]["result"] == {"worked": 4.0}
        assert desk.count("work") == 1  # the task was followed, never sent again
    finally:
        gateway.stop()
        stop_all(sales)
