"""Agents that ask (`gateway.flows.questions`), end to end on both databases:
the sales desk (official a2a-sdk) answers a ``ship`` with input-required; the
run waits, its user -- and no one else -- answers, over the REST API or as an
A2A message to the run's task; the answer reaches the same task of the desk,
which may ask again; every message the desk got is counted."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
    TaskState,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct, Value

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import POLICY, QUOTE_FLOW, FlowSetup, flow_setup
from tests.support.mcp_clients import mcp_client
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for, wait_for_awaited

SHIP_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ship-flow",
    "name": "Ship an order",
    "input": {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["sku", "quantity"],
    },
    "steps": [
        {
            "id": "ship",
            "call": {"agent": "sales", "skill": "ship"},
            "input": "{sku: input.sku, quantity: input.quantity}",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'Ada', total: steps.ship.output.eta_days}",
        },
    ],
    "output": "{shipping: steps.ship.output, reply: steps.reply.text}",
}
ORDER = {"sku": "X-100", "quantity": 3}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, ship-flow registered once."""
    policy = POLICY + "  ship-flow:\n    grant: [sales:quote]\n"
    tmp_path = tmp_path_factory.mktemp("questions")
    with flow_setup(tmp_path, module_database_url, policy) as made:
        assert made.register(SHIP_FLOW).status_code == 201
        yield made


# Per desk: how many messages it had got when the running test began.
_DESK_FROM: dict[int, int] = {}


@pytest.fixture
def setup(deployment: FlowSetup) -> FlowSetup:
    """The module's gateway; from here on, the desk's messages are the test's
    own (`_ship_messages`)."""
    with deployment.desk.lock:
        _DESK_FROM[id(deployment.desk)] = len(deployment.desk.received)
    return deployment


def _start(client: httpx.Client) -> dict[str, Any]:
    started = client.post("/flows/ship-flow/runs", json={"input": ORDER})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def _ship_messages(setup: FlowSetup) -> list[dict[str, Any]]:
    """The ``ship`` messages the desk got since the test began."""
    with setup.desk.lock:
        since = setup.desk.received[_DESK_FROM.get(id(setup.desk), 0) :]
        return [r for r in since if r["skill"] == "ship"]


def test_the_runs_user_answers_the_agents_question_and_the_run_goes_on(
    setup: FlowSetup,
) -> None:
    with setup.user() as dana, setup.user("erin") as erin, setup.admin() as admin:
        run = _start(dana)
        asked = setup.run(dana, run, "input_required", "failed", "completed")
        assert asked["state"] == "input_required", asked
        step = next(s for s in asked["steps"] if s["id"] == "ship")
        assert step["state"] == "input_required"
        assert "Which warehouse ships 3 x X-100" in step["output"]["question"]
        assert step["output"]["data"] == {"choose": "warehouse", "options": ["north", "south"]}
        assert step["output"]["round"] == 1
        url = f"/flows/ship-flow/runs/{run['id']}/answer"

        # Another user, and an admin, find no such run: the question is dana's.
        for other in (erin, admin):
            refused = other.post(url, json={"text": "north"})
            assert refused.status_code == 404, refused.text
            assert refused.json()["type"].endswith("run-not-found")
        # Bad answers store nothing and send nothing.
        bad_answers: list[dict[str, Any]] = [
            {},
            {"text": ""},
            {"text": "  \n"},
            {"data": {}},
            {"text": "x", "extra": 1},
            {"data": [1]},
            {"text": 5},
        ]
        for bad in bad_answers:
            assert dana.post(url, json=bad).status_code == 422, bad
        assert (
            dana.post("/flows/ship-flow/runs/run_nope/answer", json={"text": "x"}).status_code
            == 404
        )
        assert len(_ship_messages(setup)) == 1

        # An answer the desk does not take: it asks again (round 2).
        answered = dana.post(url, json={"text": "east"})
        assert answered.status_code == 202, answered.text
        assert answered.json() == {"run": run["id"], "step": "ship", "status": "delivered"}

        def second_round() -> tuple[dict[str, Any], dict[str, Any]] | None:
            again = setup.run(dana, run, "input_required", "failed", "completed")
            shipping = next(s for s in again["steps"] if s["id"] == "ship")
            asked = (shipping.get("output") or {}).get("round") == 2
            return (again, shipping) if asked or again["state"] != "input_required" else None

        again, shipping = wait_for(second_round, every=0.1, what="the second question")
        assert (shipping["output"] or {}).get("round") == 2, (again["error"], shipping)
        # A retry of the answer to question 1 is refused, not taken for question 2.
        retried = dana.post(url, json={"text": "east", "round": 1})
        assert retried.status_code == 409, retried.text
        assert "asks question 2 now, not 1" in retried.json()["detail"]
        assert dana.post(url, json={"text": "x", "round": 0}).status_code == 422

        assert dana.post(url, json={"data": {"warehouse": "north"}, "round": 2}).status_code == 202
        done = setup.run(dana, run, "completed", "failed")
        assert done["state"] == "completed", done
        assert done["output"]["shipping"] == {
            "sku": "X-100",
            "quantity": 3,
            "warehouse": "north",
            "eta_days": 2,
        }
        # Nothing left to answer.
        late = dana.post(url, json={"text": "south"})
        assert late.status_code == 409, late.text
        assert late.json()["type"].endswith("not-asking")
        audit = admin.get("/audit", params={"trace": done["trace_id"]}).json()["items"]

    # The desk got the order once and each answer once, all on one task.
    messages = _ship_messages(setup)
    assert [m["message_id"] for m in messages] == [
        f"{run['id']}.ship.1",
        f"{run['id']}.ship.1.answer1",
        f"{run['id']}.ship.1.answer2",
    ]
    assert [m["data"] for m in messages] == [ORDER, {}, {"warehouse": "north"}]
    answers = [a for a in audit if a["event"] == "flow.answer"]
    assert [(a["subject"], a["action"]) for a in answers] == [("dana", "ship"), ("dana", "ship")]
    # The answers' own words stay out of the audit.
    assert all("east" not in (a["detail"] or "") for a in answers)


@asynccontextmanager
async def a2a_client(setup: FlowSetup, token: str) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
    ) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
        yield await factory.create_from_url(f"{setup.gateway.url}/a2a/ship-flow")


def _message(text: str, task_id: str = "", *, data: dict[str, Any] | None = None) -> Message:
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, task_id=task_id)
    if data is not None:
        struct = Struct()
        struct.update(data)
        message.parts.append(Part(data=Value(struct_value=struct)))
    if text:
        message.parts.append(Part(text=text))
    return message


async def _poll(client: Client, task_id: str, *states: int) -> Task:
    async def reached() -> list[Task]:
        task = await client.get_task(GetTaskRequest(id=task_id))
        return [task] if task.status.state in states else []

    [task] = await wait_for_awaited(reached, every=0.1, what=f"task {task_id} in {states}")
    return task


async def test_an_a2a_caller_answers_on_the_runs_task(setup: FlowSetup) -> None:
    scopes = "sales:quote inventory:read"
    dana_token = await asyncio.to_thread(setup.gateway.token, "dana", scopes)
    erin_token = await asyncio.to_thread(setup.gateway.token, "erin", scopes)
    immediately = SendMessageConfiguration(return_immediately=True)
    async with a2a_client(setup, dana_token) as dana, a2a_client(setup, erin_token) as erin:
        started = [
            e
            async for e in dana.send_message(
                SendMessageRequest(message=_message("", data=ORDER), configuration=immediately)
            )
        ]
        task_id = started[0].task.id
        asked = await _poll(dana, task_id, TaskState.TASK_STATE_INPUT_REQUIRED)
        assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, asked
        assert "Which warehouse" in asked.status.message.parts[0].text
        assert MessageToDict(asked.metadata)["question"] == {
            "step": "ship",
            "round": 1,
            "agent": "sales",
        }
        # Erin cannot answer dana's run: to her the task does not exist.
        with pytest.raises(Exception, match="not found"):
            _ = [
                e
                async for e in erin.send_message(
                    SendMessageRequest(message=_message("north", task_id))
                )
            ]
        # Dana answers on the task; a blocking send follows the run to its end.
        answered = [
            e
            async for e in dana.send_message(SendMessageRequest(message=_message("south", task_id)))
        ]
        done = answered[-1].task
        assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
        result = MessageToDict(done.artifacts[0].parts[0].data)
        assert result["shipping"]["warehouse"] == "south"
        # A message to a run that asks nothing any more is refused.
        with pytest.raises(Exception, match="waits for no answer"):
            _ = [
                e
                async for e in dana.send_message(
                    SendMessageRequest(message=_message("north", task_id))
                )
            ]
    assert [m["message_id"].split(".", 1)[-1] for m in _ship_messages(setup)] == [
        "ship.1",
        "ship.1.answer1",
    ]


@pytest.mark.crash
def test_a_question_pending_across_a_sigkill(tmp_path: Path, database_url: str | None) -> None:
    """The gateway killed while the run waits for dana's answer: started again,
    the run still waits at the same question (nothing sent again), and her
    answer reaches the same task."""
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "  ship-flow:\n    grant: [sales:quote]\n")
    gateway = GatewayProcess(tmp_path / "data", database_url=database_url, policy_file=policy)
    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            card = sales.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card, "id": "sales"}).status_code == 201
            assert admin.post("/flows", json=SHIP_FLOW).status_code == 201

        def run_now() -> dict[str, Any]:
            with gateway.client("dana", "sales:quote") as dana:
                body: dict[str, Any] = dana.get(f"/flows/ship-flow/runs/{run['id']}").json()
                return body

        def until(state: str) -> dict[str, Any]:
            ends = (state, "failed", "completed")
            return wait_for(
                lambda: body if (body := run_now())["state"] in ends else None,
                seconds=60,
                every=0.1,
                what=run_now,
            )

        with gateway.client("dana", "sales:quote") as dana:
            run = _start(dana)
        assert until("input_required")["state"] == "input_required"
        gateway.kill()
        gateway.start()
        after = until("input_required")
        assert after["state"] == "input_required", after
        assert next(s for s in after["steps"] if s["id"] == "ship")["output"]["round"] == 1
        with gateway.client("dana", "sales:quote") as dana:
            url = f"/flows/ship-flow/runs/{run['id']}/answer"
            answered = dana.post(url, json={"text": "north"})
            assert answered.status_code == 202, answered.text
        done = until("completed")
        assert done["state"] == "completed", done
        assert done["output"]["shipping"]["warehouse"] == "north"
    finally:
        gateway.stop()
        sales.stop()
    with desk.lock:
        sent = [r["message_id"] for r in desk.received if r["skill"] == "ship"]
    assert sent == [f"{run['id']}.ship.1", f"{run['id']}.ship.1.answer1"]


def test_the_console_shows_the_question_and_takes_the_users_answer(setup: FlowSetup) -> None:
    """The run's page shows what the agent asks; its user answers in a form
    (with the session's CSRF token); another user sees no answer form."""
    with setup.user() as dana_api:
        run = _start(dana_api)
        assert setup.run(dana_api, run, "input_required", "failed")["state"] == "input_required"
    page = f"/ui/flows/ship-flow/runs/{run['id']}"
    web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    erin_web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    with web, erin_web:
        csrf = dev_login(web, "dana", "sales:quote")
        shown = web.get(page)
        assert shown.status_code == 200
        assert "Which warehouse ships 3 x X-100" in shown.text
        assert 'id="answer"' in shown.text
        erin_csrf = dev_login(erin_web, "erin", "sales:quote")
        assert erin_web.get(page).status_code == 404
        refused = erin_web.post(page + "/answer", data={"csrf": erin_csrf, "answer": "south"})
        assert refused.status_code == 404
        forged = web.post(page + "/answer", data={"answer": "south"})
        assert forged.status_code == 403
        empty = web.post(page + "/answer", data={"csrf": csrf, "answer": "  "})
        assert empty.status_code == 422
        assert len(_ship_messages(setup)) == 1
        answered = web.post(page + "/answer", data={"csrf": csrf, "answer": "south"})
        assert answered.status_code == 303, answered.text
    with setup.user() as dana_api:
        done = setup.run(dana_api, run, "completed", "failed")
    assert done["output"]["shipping"]["warehouse"] == "south"


async def test_an_mcp_client_answers_with_the_runs_task_id(setup: FlowSetup) -> None:
    """The flow as the tool ``ship-flow__run``: its result says what the agent
    asks, with the run's ``taskId``; the tool called again with that task id
    and the answer goes on with the same run."""
    token = await asyncio.to_thread(setup.gateway.token, "dana", "sales:quote")
    async with mcp_client(f"{setup.gateway.url}/mcp", token, "2026-07-28") as client:
        asked = await client.call_tool("ship-flow__run", {"data": ORDER})
        assert isinstance(asked, types.CallToolResult) and not asked.is_error, asked
        said = asked.structured_content or {}
        assert said["state"] == "TASK_STATE_INPUT_REQUIRED", said
        assert "Which warehouse" in json.dumps([c.model_dump() for c in asked.content])
        done = await client.call_tool(
            "ship-flow__run", {"taskId": said["taskId"], "message": "south"}
        )
    assert isinstance(done, types.CallToolResult) and not done.is_error, done
    result = done.structured_content or {}
    assert result["state"] == "TASK_STATE_COMPLETED", result
    assert result["shipping"]["warehouse"] == "south"
    assert [m["message_id"].split(".", 1)[-1] for m in _ship_messages(setup)] == [
        "ship.1",
        "ship.1.answer1",
    ]


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_an_mcp_client_that_takes_elicitations_is_asked_the_agents_question(
    setup: FlowSetup, mode: str
) -> None:
    """The run's question put to the MCP client's user as an elicitation (a
    2026-07-28 input_required result, or a 2025-11-25 elicitation/create on
    the call's stream): a first answer the desk does not take is asked
    again, the second ends the run -- all in one tool call."""
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.requested_schema["required"] == ["answer"]
        return types.ElicitResult(
            action="accept", content={"answer": "east" if len(asked) == 1 else "north"}
        )

    token = await asyncio.to_thread(setup.gateway.token, "dana", "sales:quote")
    url = f"{setup.gateway.url}/mcp"
    async with mcp_client(url, token, mode, elicitation_callback=answer) as client:
        done = await client.call_tool("ship-flow__run", {"data": ORDER})
    assert isinstance(done, types.CallToolResult) and not done.is_error, done
    result = done.structured_content or {}
    assert result["state"] == "TASK_STATE_COMPLETED", result
    assert result["shipping"]["warehouse"] == "north"
    assert len(asked) == 2 and asked[0].startswith("ship-flow asks: ")
    assert "Which warehouse ships 3 x X-100" in asked[0]
    assert [m["message_id"].split(".", 1)[-1] for m in _ship_messages(setup)] == [
        "ship.1",
        "ship.1.answer1",
        "ship.1.answer2",
    ]


def _runs(setup: FlowSetup) -> list[dict[str, Any]]:
    with setup.user() as dana:
        found: list[dict[str, Any]] = dana.get("/flows/ship-flow/runs").json()
        return found


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_declining_the_elicitation_leaves_the_question_waiting(
    setup: FlowSetup, mode: str
) -> None:
    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    token = await asyncio.to_thread(setup.gateway.token, "dana", "sales:quote")
    url = f"{setup.gateway.url}/mcp"
    async with mcp_client(url, token, mode, elicitation_callback=decline) as client:
        first = await client.call_tool("ship-flow__run", {"data": ORDER})
        if mode == "legacy":  # the question, with the task to answer later
            said = first.structured_content or {}
            assert said["state"] == "TASK_STATE_INPUT_REQUIRED", said
            task_id = said["taskId"]
        else:  # said so, and nothing sent
            assert "still waits" in json.dumps([c.model_dump() for c in first.content])
            task_id = (await asyncio.to_thread(_runs, setup))[0]["id"]
        assert len(_ship_messages(setup)) == 1
        done = await client.call_tool("ship-flow__run", {"taskId": task_id, "message": "south"})
    assert (done.structured_content or {})["state"] == "TASK_STATE_COMPLETED", done


async def test_a_checkpoint_is_not_put_to_the_mcp_user(setup: FlowSetup) -> None:
    """A run waiting at a checkpoint waits for an approver: its user is not
    asked anything, and the result names the approval."""
    registered = await asyncio.to_thread(setup.register, QUOTE_FLOW)
    assert registered.status_code == 201, registered.text
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "yes"})

    token = await asyncio.to_thread(setup.gateway.token, "dana", "sales:quote inventory:read")
    url = f"{setup.gateway.url}/mcp"
    big = {"sku": "X-100", "quantity": 100, "customer": "Ada"}
    async with mcp_client(url, token, "2026-07-28", elicitation_callback=answer) as client:
        held = await client.call_tool("quote-flow__run", {"data": big})
    said = held.structured_content or {}
    assert said["state"] == "TASK_STATE_INPUT_REQUIRED", said
    assert said["approval"].startswith("apr_") and "question" not in said
    assert asked == []


def test_a_run_resumed_while_its_agent_asks_waits_at_the_question_again(
    setup: FlowSetup,
) -> None:
    with setup.user() as dana:
        run = _start(dana)
        assert setup.run(dana, run, "input_required", "failed")["state"] == "input_required"
        base = f"/flows/ship-flow/runs/{run['id']}"
        assert dana.post(base + "/cancel").status_code == 200
        assert dana.post(base + "/answer", json={"text": "north"}).status_code == 409
        resumed = dana.post(base + "/resume")
        assert resumed.status_code == 200, resumed.text
        again = setup.run(dana, run, "input_required", "failed")
        assert again["state"] == "input_required", again
        answered = dana.post(base + "/answer", json={"text": "north"})
        assert answered.status_code == 202, answered.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"]["shipping"]["warehouse"] == "north"
    assert len(_ship_messages(setup)) == 2  # the order once, the answer once
