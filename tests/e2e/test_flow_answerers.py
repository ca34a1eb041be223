"""Who answers an agent's question (`gateway.flows.answerers`), end to end on
both databases: the sales desk (official a2a-sdk) asks which warehouse ships
an order; the flow answers it itself from an expression, puts it to a
reviewer on the approvals desk, or fails the step -- and the desk counts
every message it got."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import POLICY, FlowSetup, flow_setup

ORDER = {"sku": "X-100", "quantity": 3}


def _flow(flow_id: str, questions: dict[str, Any] | None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": "ship",
        "call": {"agent": "sales", "skill": "ship"},
        "input": "{sku: input.sku, quantity: input.quantity}",
    }
    if questions is not None:
        step["questions"] = questions
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id,
        "name": "Ship an order",
        "input": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "quantity": {"type": "integer"},
                "prefer": {"type": "string"},
            },
            "required": ["sku", "quantity"],
        },
        "steps": [step],
    }


FLOWS = {
    # The flow's own answer: the warehouse the input prefers, if any.
    "auto-ship": {"answer": "input.prefer"},
    "desk-ship": {"to": "reviewer"},
    "unattended-ship": {"to": "fail"},
    # An answer as data, chosen from the question's own options.
    "data-ship": {"answer": "{warehouse: question.data.options[-1]}", "to": "fail"},
}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, the FLOWS registered once:
    each reads the desk's messages of its own runs (`_ship_messages`), and
    approvals of its own runs or those pending since it began."""
    policy = POLICY + "".join(f"  {f}:\n    grant: [sales:quote]\n" for f in FLOWS)
    tmp_path = tmp_path_factory.mktemp("answerers")
    with flow_setup(tmp_path, module_database_url, policy) as made:
        for flow_id, questions in FLOWS.items():
            registered = made.register(_flow(flow_id, questions))
            assert registered.status_code == 201, registered.text
        yield made


def _start(client: httpx.Client, flow_id: str, **extra: Any) -> dict[str, Any]:
    started = client.post(f"/flows/{flow_id}/runs", json={"input": {**ORDER, **extra}})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def _ship_messages(setup: FlowSetup, run_id: str) -> list[dict[str, Any]]:
    with setup.desk.lock:
        return [
            r
            for r in setup.desk.received
            if r["skill"] == "ship" and str(r["message_id"]).startswith(run_id)
        ]


def _ended(setup: FlowSetup, client: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    return setup.run(client, run, "completed", "failed", "rejected", "canceled")


def test_the_flows_expression_answers_and_no_one_is_asked(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        # Pending before the test: other tests' (the gateway is the module's).
        pending = admin.get("/approvals", params={"state": "pending"}).json()["items"]
        before = {a["id"] for a in pending}
        run = _start(dana, "auto-ship", prefer="south")
        done = _ended(setup, dana, run)
        assert done["state"] == "completed", done
        assert done["output"]["warehouse"] == "south"
        assert done["output"]["eta_days"] == 4
        audit = admin.get("/audit", params={"trace": done["trace_id"]}).json()["items"]
        pending = admin.get("/approvals", params={"state": "pending"}).json()["items"]
        assert [a for a in pending if a["id"] not in before] == []
    messages = _ship_messages(setup, run["id"])
    assert [m["message_id"] for m in messages] == [
        f"{run['id']}.ship.1",
        f"{run['id']}.ship.1.answer1",
    ]
    assert messages[1]["text"] == "south"
    answers = [a for a in audit if a["event"] == "flow.answer"]
    # Answered for the run's user, by the flow: said so, not the words.
    assert [(a["subject"], a["action"]) for a in answers] == [("dana", "ship")]
    assert "questions.answer" in answers[0]["detail"]
    assert "south" not in answers[0]["detail"]


def test_an_expression_that_gives_no_answer_passes_the_question_on(setup: FlowSetup) -> None:
    with setup.user() as dana:
        # No preference: the expression is null, and the run's user is asked.
        run = _start(dana, "auto-ship")
        asked = setup.run(dana, run, "input_required", "failed", "completed")
        assert asked["state"] == "input_required", asked
        url = f"/flows/auto-ship/runs/{run['id']}/answer"
        assert dana.post(url, json={"text": "north"}).status_code == 202
        done = _ended(setup, dana, run)
        assert done["state"] == "completed", done
        assert done["output"]["warehouse"] == "north"
    assert len(_ship_messages(setup, run["id"])) == 2


def test_an_answer_as_data_and_a_flow_no_human_attends(setup: FlowSetup) -> None:
    with setup.user() as dana:
        done = _ended(setup, dana, _start(dana, "data-ship"))
        assert done["state"] == "completed", done
        assert done["output"]["warehouse"] == "south"  # the last option, as data
        failed = _ended(setup, dana, run := _start(dana, "unattended-ship"))
        assert failed["state"] == "failed", failed
        assert "Which warehouse ships 3 x X-100" in failed["error"]
        assert "questions.to: fail" in failed["error"]
        # The step's record ends as the step did, not left asking.
        shipping = next(s for s in failed["steps"] if s["id"] == "ship")
        assert shipping["state"] == "failed", shipping
    # The unattended run sent the order once, and no answer.
    assert len(_ship_messages(setup, run["id"])) == 1


def _pending_question(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    found = admin.get("/approvals", params={"state": "pending", "agent": "desk-ship"}).json()
    mine: list[dict[str, Any]] = [a for a in found["items"] if a["request"].get("run") == run_id]
    assert len(mine) == 1, found
    return mine[0]


def test_a_reviewer_answers_on_the_approvals_desk(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = _start(dana, "desk-ship")
        waiting = setup.run(dana, run, "input_required", "failed", "completed")
        assert waiting["state"] == "input_required", waiting
        approval = _pending_question(admin, run["id"])
        assert approval["request"]["question"]["agent"] == "sales"
        assert approval["request"]["question"]["round"] == 1
        assert "Which warehouse" in approval["request"]["question"]["question"]
        url = f"/approvals/{approval['id']}"

        # The run's user does not answer a question meant for a reviewer.
        answered = dana.post(f"/flows/desk-ship/runs/{run['id']}/answer", json={"text": "x"})
        assert answered.status_code == 409, answered.text
        # Nor decides it: the desk is an admin's.
        assert dana.post(url, json={"decision": "approve"}).status_code == 403
        # Approving a question takes an answer; rejecting takes none; an
        # empty or malformed answer is refused. Nothing is decided by these.
        refusals: list[tuple[dict[str, Any], str]] = [
            ({"decision": "approve"}, "answer-required"),
            ({"decision": "reject", "answer": {"text": "north"}}, "answer-with-reject"),
        ]
        for body, kind in refusals:
            refused = admin.post(url, json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"].endswith(kind)
        bad: list[Any] = [
            {},
            {"text": " "},
            {"data": {}},
            {"text": "x", "more": 1},
            "north",
            {"text": "x" * 16001},
            {"data": [1]},
        ]
        for answer in bad:
            refused = admin.post(url, json={"decision": "approve", "answer": answer})
            assert refused.status_code == 422, (answer, refused.text)
        assert admin.get(url).json()["state"] == "pending"
        unknown = admin.post(
            "/approvals/apr_nope", json={"decision": "approve", "answer": {"text": "north"}}
        )
        assert unknown.status_code == 404, unknown.text

        decided = admin.post(url, json={"decision": "approve", "answer": {"text": "north"}})
        assert decided.status_code == 200, decided.text
        done = _ended(setup, dana, run)
        assert done["state"] == "completed", done
        assert done["output"]["warehouse"] == "north"
        # A second decision finds it decided.
        again = admin.post(url, json={"decision": "approve", "answer": {"text": "south"}})
        assert again.status_code == 409
        steps = {s["id"]: s for s in done["steps"]}
        question_step = next(s for s in steps if s.startswith("ship:question1."))
        assert steps[question_step]["kind"] == "checkpoint"
        assert steps[question_step]["approval_id"] == approval["id"]
    messages = _ship_messages(setup, run["id"])
    assert [m["text"] for m in messages[1:]] == ["north"]
    assert len(messages) == 2


def test_a_reviewer_who_rejects_the_question_ends_the_run(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = _start(dana, "desk-ship")
        setup.run(dana, run, "input_required")
        approval = _pending_question(admin, run["id"])
        rejected = admin.post(
            f"/approvals/{approval['id']}", json={"decision": "reject", "reason": "no stock"}
        )
        assert rejected.status_code == 200, rejected.text
        done = _ended(setup, dana, run)
        assert done["state"] == "rejected", done
        assert "no stock" in done["error"]
    assert len(_ship_messages(setup, run["id"])) == 1


def test_an_answer_is_refused_for_an_approval_that_is_not_a_question(
    setup: FlowSetup,
) -> None:
    checkpointed = copy.deepcopy(_flow("held-ship", None))
    checkpointed["steps"].insert(0, {"id": "ok", "checkpoint": {"prompt": "Ship it?"}})
    assert setup.register(checkpointed).status_code == 201
    with setup.user() as dana, setup.admin() as admin:
        run = _start(dana, "held-ship")
        setup.run(dana, run, "input_required")
        found = admin.get("/approvals", params={"state": "pending", "agent": "held-ship"}).json()
        approval = found["items"][0]
        url = f"/approvals/{approval['id']}"
        refused = admin.post(url, json={"decision": "approve", "answer": {"text": "north"}})
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("not-a-question")
        assert admin.get(url).json()["state"] == "pending"
        assert admin.post(url, json={"decision": "reject"}).status_code == 200


@pytest.mark.parametrize(
    ("questions", "says"),
    [
        # A map's answer reads the item, but not a step that has not run.
        (None, "steps[0].map.questions.answer"),
        ({"answer": "steps.later.output"}, "later"),
        ({"answer": "nobody.knows"}, "nobody"),
        ({"to": "everyone"}, "questions.to"),
        ({"answer": ""}, "questions.answer"),
        ({"answer": "question", "extra": 1}, "questions.extra"),
    ],
)
def test_registration_checks_who_answers(
    setup: FlowSetup, questions: dict[str, Any] | None, says: str
) -> None:
    document = _flow("checked-ship", questions)
    if questions is None:
        call = document["steps"][0]
        each = {
            "over": "[input.sku]",
            "call": call["call"],
            "input": "{sku: item, quantity: input.quantity}",
            "questions": {"answer": "item || steps.later.output"},
        }
        document["steps"] = [{"id": "each", "map": each}]
    document["steps"].append(
        {"id": "later", "call": {"agent": "sales", "skill": "reply"}, "input": "input"}
    )
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    assert says in refused.text
    with setup.admin() as admin:
        assert admin.get("/flows/checked-ship").status_code == 404


def test_a_reviewer_answers_in_the_console(setup: FlowSetup) -> None:
    """The desk's page shows the agent's question and an answer field; an
    approval without an answer is refused there too."""
    with setup.user() as dana, setup.admin() as admin:
        run = _start(dana, "desk-ship")
        setup.run(dana, run, "input_required")
        approval = _pending_question(admin, run["id"])
    page = f"/ui/approvals/{approval['id']}"
    web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    with web:
        csrf = dev_login(web, "admin", ADMIN_SCOPE)
        shown = web.get(page)
        assert shown.status_code == 200
        assert "Which warehouse ships 3 x X-100" in shown.text
        assert 'id="answer"' in shown.text
        unanswered = web.post(page, data={"csrf": csrf, "decision": "approve"})
        assert unanswered.status_code == 422
        assert len(_ship_messages(setup, run["id"])) == 1
        answered = web.post(page, data={"csrf": csrf, "decision": "approve", "answer": "south"})
        assert answered.status_code == 303, answered.text
    with setup.user() as dana:
        done = _ended(setup, dana, run)
    assert done["state"] == "completed", done
    assert done["output"]["warehouse"] == "south"
