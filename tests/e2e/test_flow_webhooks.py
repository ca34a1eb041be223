"""Flows started by a signed webhook (SQLite and PostgreSQL): a delivery
signed as Standard Webhooks has it starts a run that acts for the trigger's
service identity, decided by the policy; the same delivery again is the same
run; anything not signed with the trigger's secret, or too old, is 401 and
starts nothing (audited); a bad trigger is refused at registration."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.flows.webhooks import key_of, signature
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

KEY = base64.b64encode(b"a 32-byte key for the crm's hook").decode()
SECRET = SecretStr("whsec_" + KEY)

HOOK_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "hook-flow",
    "name": "Quote what the CRM sends",
    "input": {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["sku", "quantity"],
    },
    "triggers": [
        {
            "id": "crm",
            "webhook": {"secret": "crm"},
            "run_as": {"subject": "crm-bot", "scopes": ["crm:events", "sales:quote"]},
            "input": "{sku: event.order.sku, quantity: event.order.quantity}",
        }
    ],
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.sku, quantity: input.quantity}",
        }
    ],
}
HOOK_POLICY = POLICY + ("  hook-flow:\n    require: [crm:events]\n    grant: [sales:quote]\n")
HOOK_POLICY += "  hook-refused:\n    require: [crm:events]\n    grant: [sales:quote]\n"
HOOK_POLICY += "  paid-flow:\n    grant: [sales:quote]\n"

# Runs wait for their order's payment; the payment provider's signed webhook
# brings it to the run waiting for that order (`deliver`), starting nothing.
PAID_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "paid-flow",
    "name": "Quote once the order is paid",
    "input": {"type": "object", "properties": {"order": {"type": "string"}}},
    "triggers": [
        {
            "id": "payments",
            "webhook": {"secret": "crm"},
            "deliver": {"event": "paid", "key": "event.order"},
        }
    ],
    "steps": [
        # The desk takes the order and names it (the sales desk's quote
        # answers with the sku it priced: a real order desk gives an id of
        # its own). The key is the desk's word, not the run's input.
        {
            "id": "order",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.order, quantity: `1`}",
        },
        {
            "id": "paid",
            "wait": {"event": "paid", "key": "steps.order.output.sku", "timeout_seconds": 60},
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: run.user, total: steps.paid.output.quantity}",
        },
    ],
}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, HOOK_FLOW and PAID_FLOW
    registered once: each test posts deliveries of ids of its own, waits with
    keys (orders) of its own, and counts what happened since it began
    (`_since`, `_audit`, the desk's counts before it)."""
    tmp_path = tmp_path_factory.mktemp("webhooks")
    with flow_setup(tmp_path, module_database_url, HOOK_POLICY, secrets={"crm": SECRET}) as made:
        assert made.register(HOOK_FLOW).status_code == 201
        assert made.register(PAID_FLOW).status_code == 201
        yield made


def _since(setup: FlowSetup) -> int:
    """The id of the latest audit record: what a test reads comes after it."""
    with setup.admin() as admin:
        items = admin.get("/audit", params={"kind": "all", "limit": 1}).json()["items"]
    return int(items[0]["id"]) if items else 0


def _audit(setup: FlowSetup, agent: str, after: int) -> list[dict[str, Any]]:
    """The records on ``agent`` after ``after``: the test's own (the gateway is the module's)."""
    with setup.admin() as admin:
        params: dict[str, str | int] = {"agent": agent, "after_id": after, "limit": 1000}
        items: list[dict[str, Any]] = admin.get("/audit", params=params).json()["items"]
    return items


def _run_ids(setup: FlowSetup, flow: str) -> set[str]:
    with setup.admin() as admin:
        return {run["id"] for run in admin.get(f"/flows/{flow}/runs").json()}


def _post(
    setup: FlowSetup,
    body: bytes,
    *,
    webhook_id: str = "msg_1",
    timestamp: int | None = None,
    key: bytes | None = None,
    trigger: str = "crm",
    flow: str = "hook-flow",
    content_type: str = "application/json",
) -> httpx.Response:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature(key or key_of(SECRET), webhook_id, stamp, body),
        "content-type": content_type,
    }
    with setup.gateway.anonymous() as anyone:
        return anyone.post(f"/flows/{flow}/hooks/{trigger}", content=body, headers=headers)


ORDER = json.dumps({"type": "order.created", "order": {"sku": "H-1", "quantity": 5}}).encode()


def test_a_signed_delivery_starts_a_run_once(setup: FlowSetup) -> None:
    after, quotes = _since(setup), setup.desk.count("quote")
    first = _post(setup, ORDER)
    assert first.status_code == 202, first.text
    run_id = first.json()["run"]
    again = _post(setup, ORDER)  # the sender retries the same delivery
    assert again.status_code == 200 and again.json()["run"] == run_id
    with setup.admin() as admin:
        run = setup.run(admin, {"id": run_id, "flow_id": "hook-flow"}, "completed", "failed")
    audit = _audit(setup, "hook-flow", after)
    assert run["state"] == "completed", run
    assert run["user"] == {"subject": "crm-bot", "issuer": "urn:switchboard:trigger"}
    assert run["input"] == {"sku": "H-1", "quantity": 5}
    assert run["grant"]["actors"] == ["webhook:hook-flow/crm", "hook-flow"]
    assert run["grant"]["scopes"] == ["sales:quote"]
    assert setup.desk.count("quote") - quotes == 1
    started = [r for r in audit if r["event"] == "flow.webhook" and r["outcome"] == "ok"]
    assert len(started) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        {"key": b"another key entirely, 32 bytes!!"},
        {"timestamp": int(time.time()) - 3600},
        {"timestamp": int(time.time()) + 3600},
    ],
)
def test_a_delivery_not_signed_with_the_secret_is_401(
    setup: FlowSetup, tamper: dict[str, Any]
) -> None:
    after, runs = _since(setup), _run_ids(setup, "hook-flow")
    refused = _post(setup, ORDER, webhook_id="msg_tampered", **tamper)
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert _run_ids(setup, "hook-flow") == runs  # no run started
    audit = _audit(setup, "hook-flow", after)
    assert any(r["event"] == "flow.webhook" and r["decision"] == "deny" for r in audit)


def test_unsigned_or_changed_bodies_are_401(setup: FlowSetup) -> None:
    with setup.gateway.anonymous() as anyone:
        bare = anyone.post("/flows/hook-flow/hooks/crm", content=ORDER)
    assert bare.status_code == 401
    stamp = str(int(time.time()))
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": stamp,
        "webhook-signature": signature(key_of(SECRET), "msg_2", stamp, ORDER),
    }
    with setup.gateway.anonymous() as anyone:
        changed = anyone.post(
            "/flows/hook-flow/hooks/crm", content=ORDER.replace(b"5", b"500"), headers=headers
        )
    assert changed.status_code == 401


def test_bad_events_and_unknown_hooks(setup: FlowSetup) -> None:
    assert _post(setup, b"not json", webhook_id="m3").status_code == 422
    wrong = json.dumps({"order": {"sku": "H-1", "quantity": "many"}}).encode()
    assert _post(setup, wrong, webhook_id="m4").status_code == 422
    assert _post(setup, ORDER, webhook_id="m-nope", trigger="nope").status_code == 404


def test_a_signed_delivery_holding_nan_starts_nothing(setup: FlowSetup) -> None:
    """Issue 57: screened on its way in as JSON; sent as text, refused by the
    webhook's own reading, which is the gateway's one JSON reader."""
    runs, received = _run_ids(setup, "hook-flow"), len(setup.desk.received)
    for number in ("NaN", "-Infinity", "1e999"):
        body = ORDER.replace(b"5", number.encode())
        screened = _post(setup, body, webhook_id=f"n-{number}")
        assert screened.status_code == 400, screened.text
        assert screened.json()["type"] == "urn:switchboard:problem:not-a-number"
        read = _post(setup, body, webhook_id=f"t-{number}", content_type="text/plain")
        assert read.status_code == 422, read.text
        assert "not a JSON number" in read.json()["detail"]
    assert _run_ids(setup, "hook-flow") == runs  # no run started
    assert setup.desk.received[received:] == []


def test_a_service_identity_the_policy_refuses_starts_nothing(setup: FlowSetup) -> None:
    document = json.loads(json.dumps(HOOK_FLOW))
    document["id"] = "hook-refused"  # a flow of its own: hook-flow is the module's
    document["triggers"][0]["run_as"]["scopes"] = ["sales:quote"]  # no crm:events
    assert setup.register(document).status_code == 201
    refused = _post(setup, ORDER, webhook_id="m5", flow="hook-refused")
    assert refused.status_code == 403, refused.text
    assert "crm:events" in refused.text


@pytest.mark.parametrize(
    ("trigger", "field", "says"),
    [
        ({"id": "t", "webhook": {"secret": "crm"}}, "triggers[0]", "needs run_as"),
        (
            {"id": "t", "webhook": {"secret": "nope"}, "run_as": {"subject": "x"}},
            "triggers[0].webhook.secret",
            "no secret",
        ),
        (
            {
                "id": "t",
                "webhook": {"secret": "crm"},
                "run_as": {"subject": "x"},
                "input": "{sku: task.output.sku}",
            },
            "triggers[0].input",
            "reads only event and webhook",
        ),
        (
            {"id": "t", "task": {"agent": "sales"}, "run_as": {"subject": "x"}},
            "triggers[0]",
            "no run_as",
        ),
    ],
)
def test_a_bad_webhook_trigger_is_refused(
    setup: FlowSetup, trigger: dict[str, Any], field: str, says: str
) -> None:
    refused = setup.register({**HOOK_FLOW, "triggers": [trigger]})
    assert refused.status_code == 422, refused.text
    assert says in refused.text and field in refused.text


def _waiting_for_payment(setup: FlowSetup, client: httpx.Client, order: str) -> dict[str, Any]:
    started = client.post("/flows/paid-flow/runs", json={"input": {"order": order}})
    assert started.status_code == 202, started.text
    run: dict[str, Any] = started.json()

    def waiting() -> dict[str, Any] | None:
        seen: dict[str, Any] = client.get(f"/flows/paid-flow/runs/{run['id']}").json()
        steps = {s["id"]: s for s in seen["steps"]}
        return seen if steps.get("paid", {}).get("state") == "waiting" else None

    return wait_for(waiting, 20, what="the run waiting for the payment")


def test_a_delivering_webhook_brings_its_event_to_the_run_waiting_with_its_key(
    setup: FlowSetup,
) -> None:
    after, quotes, replies = _since(setup), setup.desk.count("quote"), setup.desk.count("reply")
    paid = json.dumps({"order": "o-1", "quantity": 3}).encode()
    with setup.user() as dana:
        first = _waiting_for_payment(setup, dana, "o-1")
        other = _waiting_for_payment(setup, dana, "o-2")
        # No run waits for o-9: 404, nothing kept (the sender retries later).
        nobody = _post(
            setup, b'{"order": "o-9"}', webhook_id="nobody", trigger="payments", flow="paid-flow"
        )
        assert nobody.status_code == 404, nobody.text
        assert nobody.json()["type"].endswith("no-run-waiting")
        # Not signed with the secret: 401, delivered to nobody.
        forged = _post(
            setup, paid, webhook_id="forged", trigger="payments", flow="paid-flow", key=b"x" * 32
        )
        assert forged.status_code == 401
        delivered = _post(setup, paid, webhook_id="pay_1", trigger="payments", flow="paid-flow")
        assert delivered.status_code == 202, delivered.text
        assert delivered.json() == {"status": "delivered", "runs": [first["id"]]}
        done = setup.run(dana, first, "completed", "failed")
        still = dana.get(f"/flows/paid-flow/runs/{other['id']}").json()
    assert done["state"] == "completed", done
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["paid"]["output"] == {"order": "o-1", "quantity": 3}
    assert steps["paid"]["input"] == {"event": "paid", "key": "o-1"}
    assert done["user"]["subject"] == "dana"  # the event grants nothing: dana's run still
    assert still["state"] == "working" and still["current_step"] == "paid"
    assert setup.desk.count("quote") - quotes == 2  # 2 orders
    assert setup.desk.count("reply") - replies == 1
    audit = _audit(setup, "paid-flow", after)
    hooks = [r for r in audit if r["event"] == "flow.webhook"]
    assert {r["outcome"] for r in hooks} >= {"delivered", "no_run_waiting", "unauthenticated"}
    assert all(r["subject"] == "webhook:paid-flow/payments" for r in hooks)


def test_a_bad_delivering_trigger_is_refused_naming_its_field(setup: FlowSetup) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"deliver": {"event": "shipped", "key": "event.order"}}, "deliver.event", "no wait"),
        ({"deliver": {"event": "paid", "key": "input.order"}}, "deliver.key", "reads only"),
        (
            {"deliver": {"event": "paid", "key": "event.order"}, "run_as": {"subject": "x"}},
            "",
            "starts no run",
        ),
    ]
    # A key read from the run's input is whatever its user says: another
    # user's order id would bring that user's payment here.
    chosen = json.loads(json.dumps(PAID_FLOW))
    chosen["steps"][1]["wait"]["key"] = "input.order"
    refused = setup.register(chosen)
    assert refused.status_code == 422, refused.text
    (error,) = [e for e in refused.json()["errors"] if e["field"] == "steps[1].wait.key"]
    assert "chosen by whoever starts the run" in error["message"]
    assert error["step"] == "paid"
    for change, field, says in cases:
        document = json.loads(json.dumps(PAID_FLOW))
        trigger = {"id": "payments", "webhook": {"secret": "crm"}, **change}
        document["triggers"] = [trigger]
        refused = setup.register(document)
        assert refused.status_code == 422, (change, refused.text)
        errors = refused.json()["errors"]
        assert any(
            e["field"] == f"triggers[0]{'.' + field if field else ''}" and says in e["message"]
            for e in errors
        ), (change, errors)


def test_the_runs_user_cannot_post_the_event_a_signed_webhook_brings(setup: FlowSetup) -> None:
    """Red team: `paid` is the payment provider's signed word. The run's own
    user posting it to `POST .../events/paid` would skip the signature (a
    payment nobody made), so it is refused, delivered to nothing; an admin
    may still post it by hand."""
    replies = setup.desk.count("reply")
    with setup.user() as dana:
        run = _waiting_for_payment(setup, dana, "r-1")
        forged = dana.post(
            f"/flows/paid-flow/runs/{run['id']}/events/paid", json={"order": "r-1", "quantity": 3}
        )
        assert forged.status_code == 403, forged.text
        assert forged.headers["content-type"].startswith("application/problem+json")
        assert "signed webhook" in forged.json()["detail"]
        still = dana.get(f"/flows/paid-flow/runs/{run['id']}").json()
    assert still["state"] == "working" and still["current_step"] == "paid", still
    assert setup.desk.count("reply") == replies  # the run did not go on
    with setup.admin() as admin:
        by_hand = admin.post(
            f"/flows/paid-flow/runs/{run['id']}/events/paid", json={"order": "r-1", "quantity": 2}
        )
        assert by_hand.status_code == 202, by_hand.text
        done = setup.run(admin, run, "completed", "failed")
    assert done["state"] == "completed"
    # The first event delivered is the one a wait takes: the admin's, so the
    # forged one was never delivered, neither at once nor later.
    paid = {s["id"]: s for s in done["steps"]}["paid"]
    assert paid["output"] == {"order": "r-1", "quantity": 2}, paid


def test_a_key_two_users_runs_wait_with_is_delivered_to_neither(setup: FlowSetup) -> None:
    """Red team: two users' runs may wait with one key (here the desk names
    orders by sku, which both ordered). Erin's run waiting for dana's order `t-1`: the provider's `paid`
    for t-1 would reach erin's run too (dana's payment details in erin's run,
    and erin's run going on as paid). Runs of more than one user waiting with
    the key: 409, delivered to none, audited."""
    after = _since(setup)
    paid = json.dumps({"order": "t-1", "quantity": 3, "card": "4111 ... 1111"}).encode()
    with setup.user() as dana, setup.user("erin") as erin:
        mine = _waiting_for_payment(setup, dana, "t-1")
        also_mine = _waiting_for_payment(setup, dana, "t-1")
        theirs = _waiting_for_payment(setup, erin, "t-1")
        refused = _post(setup, paid, webhook_id="pay_2", trigger="payments", flow="paid-flow")
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("ambiguous-key")
        for client, run in ((dana, mine), (dana, also_mine), (erin, theirs)):
            seen = client.get(f"/flows/paid-flow/runs/{run['id']}").json()
            assert seen["state"] == "working" and seen["current_step"] == "paid", seen
        # Once erin's run is gone, dana's two runs (one user) both get it.
        assert erin.post(f"/flows/paid-flow/runs/{theirs['id']}/cancel").status_code == 200
        gone = erin.get(f"/flows/paid-flow/runs/{theirs['id']}").json()
        assert {s["id"]: s for s in gone["steps"]}["paid"].get("output") is None, gone
        later = json.dumps({"order": "t-1", "quantity": 5}).encode()
        delivered = _post(setup, later, webhook_id="pay_3", trigger="payments", flow="paid-flow")
        assert delivered.status_code == 202, delivered.text
        assert sorted(delivered.json()["runs"]) == sorted([mine["id"], also_mine["id"]])
        # The first event delivered is the one a wait takes: this one, so the
        # refused one was never delivered, neither at once nor later.
        for run in (mine, also_mine):
            done = setup.run(dana, run, "completed", "failed")
            paid_step = {s["id"]: s for s in done["steps"]}["paid"]
            assert paid_step["output"] == {"order": "t-1", "quantity": 5}, done
    audit = _audit(setup, "paid-flow", after)
    assert any(r["event"] == "flow.webhook" and r["outcome"] == "ambiguous_key" for r in audit)


def test_a_delivery_whose_key_is_not_a_key_is_422_and_loses_nothing(setup: FlowSetup) -> None:
    """`deliver.key` reads the sender's body: a list, an object, a boolean,
    nothing, an empty or over-long string is no key -- 422, delivered to
    nobody -- and the run waiting goes on to take the right delivery."""
    with setup.user() as dana:
        waiting = _waiting_for_payment(setup, dana, "k-1")
        for n, order in enumerate((["k-1"], {"id": "k-1"}, True, None, "", "o" * 300)):
            body = json.dumps({"order": order, "quantity": 1}).encode()
            refused = _post(
                setup, body, webhook_id=f"bad_{n}", trigger="payments", flow="paid-flow"
            )
            assert refused.status_code == 422, (order, refused.text)
            assert "not a key" in refused.json()["detail"], refused.text
        missing = _post(
            setup, b'{"quantity": 1}', webhook_id="missing", trigger="payments", flow="paid-flow"
        )
        assert missing.status_code == 422, missing.text
        still = dana.get(f"/flows/paid-flow/runs/{waiting['id']}").json()
        assert still["state"] == "working" and still["current_step"] == "paid", still
        paid = json.dumps({"order": "k-1", "quantity": 2}).encode()
        delivered = _post(setup, paid, webhook_id="pay_ok", trigger="payments", flow="paid-flow")
        assert delivered.status_code == 202, delivered.text
        done = setup.run(dana, waiting, "completed", "failed")
    assert done["state"] == "completed", done
