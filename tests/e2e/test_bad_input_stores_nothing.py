"""Bad input is refused before anything is stored, in the caller's protocol,
and a listing never fails because of one stored row (issue 32): a run input
nested 300 deep was stored and then made `GET /flows/{id}/runs` answer 500
for everyone; a registration naming no usable URL answered 502 or 500.
Over real HTTP, with the flows' SDK agents, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import MCPError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.storage.flow_tables import flow_runs
from gateway.storage.readable import UNREADABLE
from gateway.storage.tables import a2a_tasks
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import QUOTE_FLOW, USER_SCOPES, FlowSetup, flow_setup
from tests.support.mcp_clients import mcp_client

SMALL = {"sku": "X-100", "quantity": 5, "customer": "ACME"}


def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url) as made:
        assert made.register(QUOTE_FLOW).status_code == 201
        yield made


@pytest.fixture(scope="module")
def stores_nothing(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One deployment for the cases of a refusal that stores nothing (each
    compares what is listed before and after it): they share it."""
    with flow_setup(tmp_path_factory.mktemp("refused"), module_database_url) as made:
        yield made


def _write(setup: FlowSetup, statement: Any) -> None:
    async def run() -> None:
        engine = create_async_engine(setup.gateway.settings.effective_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(statement)
        finally:
            await engine.dispose()

    anyio.run(run)


def test_a_run_input_nested_too_deep_is_refused_and_stores_nothing(setup: FlowSetup) -> None:
    with setup.user() as dana:
        for levels in (70, 300):
            refused = dana.post(
                "/flows/quote-flow/runs", json={"input": {**SMALL, "extra": _nested(levels)}}
            )
            assert refused.status_code == 400, refused.text
            problem = refused.json()
            assert problem["type"] == "urn:switchboard:problem:too-deep"
            assert "deeper than 64" in problem["detail"]
        assert dana.get("/flows/quote-flow/runs").json() == []
        # Just inside the limit is a run like any other.
        kept = dana.post("/flows/quote-flow/runs", json={"input": {**SMALL, "extra": _nested(55)}})
        assert kept.status_code == 202, kept.text
    with setup.admin() as admin:
        assert len(admin.get("/flows/quote-flow/runs").json()) == 1
        assert admin.get("/flows/quote-flow/usage").status_code == 200


def test_the_console_forms_are_held_to_the_api_s_limits(setup: FlowSetup) -> None:
    """Issue 57: the console's start form took a field nested 200 deep (a run
    was made; the API refuses more than 64 levels with 400), its fork form
    300 deep. Both now go through the API's own check: the same limit, at
    the same depth, with nothing stored."""
    with_extra = copy.deepcopy(QUOTE_FLOW)
    with_extra["input"]["properties"]["extra"] = {"type": "object"}
    assert setup.register(with_extra).status_code == 201
    order = {**SMALL, "quantity": 3}  # no manager's approval: the run ends
    with setup.user() as dana:
        ended = setup.run(dana, setup.start(dana, "quote-flow", order), "completed")
        # The API: 62 levels in a field are 64 in the body; 63 are one too many.
        for levels, status in ((62, 202), (63, 400), (200, 400)):
            sent = {"input": {**order, "extra": _nested(levels)}}
            assert dana.post("/flows/quote-flow/runs", json=sent).status_code == status
    web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    with web:
        csrf = dev_login(web, "dana", USER_SCOPES)
        form = {"csrf": csrf, **{f"f_{k}": str(v) for k, v in order.items()}}
        for extra, said in (
            (json.dumps(_nested(200)), "deeper than 64"),
            (json.dumps(_nested(63)), "deeper than 64"),
            ('{"x": NaN}', "NaN is not a JSON number"),
            ('{"x": 1e999}', "not a JSON number"),
        ):
            refused = web.post("/ui/flows/quote-flow/runs", data={**form, "f_extra": extra})
            assert refused.status_code in (400, 422), (extra[:20], refused.status_code)
            assert said in refused.text, extra[:20]
        kept = web.post(
            "/ui/flows/quote-flow/runs", data={**form, "f_extra": json.dumps(_nested(62))}
        )
        assert kept.status_code == 303, kept.text
        fork = f"/ui/flows/quote-flow/runs/{ended['id']}/fork"
        for bad, said in (
            ({**order, "extra": _nested(300)}, "deeper than 64"),
            ({**order, "extra": _nested(63)}, "deeper than 64"),
        ):
            posted = {"csrf": csrf, "step": "reply", "input": json.dumps(bad)}
            refused = web.post(fork, data=posted)
            assert refused.status_code in (400, 422), refused.status_code
            assert said in refused.text
        nan = web.post(fork, data={"csrf": csrf, "step": "reply", "input": '{"sku": NaN}'})
        assert nan.status_code == 422 and "NaN is not a JSON number" in nan.text
    with setup.admin() as admin:
        runs = admin.get("/flows/quote-flow/runs").json()
    assert len(runs) == 3, [r["input"] for r in runs]  # the ended one, and one at 62 from each


def test_one_unreadable_row_does_not_break_a_listing(setup: FlowSetup) -> None:
    """A row stored before the limit existed: shown, its input marked
    unreadable, and every other row as it is; for its user and for admins."""
    with setup.user() as dana:
        runs = [dana.post("/flows/quote-flow/runs", json={"input": SMALL}).json() for _ in "ab"]
        for run in runs:
            setup.run(dana, run, "completed", "input_required", "failed")
    poisoned = runs[0]["id"]
    _write(
        setup,
        update(flow_runs).where(flow_runs.c.id == poisoned).values(input={"x": _nested(300)}),
    )
    with setup.user() as dana, setup.admin() as admin:
        for client in (dana, admin):
            listed = client.get("/flows/quote-flow/runs")
            assert listed.status_code == 200, listed.text
            by_id = {r["id"]: r for r in listed.json()}
            assert set(by_id) == {r["id"] for r in runs}
            assert by_id[poisoned]["input"] == UNREADABLE
            assert by_id[runs[1]["id"]]["input"] == SMALL
            one = client.get(f"/flows/quote-flow/runs/{poisoned}")
            assert one.status_code == 200, one.text
            assert client.get("/flows/quote-flow/usage").status_code == 200


def _send(setup: FlowSetup, token: str, data: Any, *, rest: bool = False) -> Any:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"data": data}]}
    params = {"message": message, "metadata": {"skill": "quote"}}
    headers = {"A2A-Version": "1.0"}
    with setup.gateway.client(token) as client:
        if rest:
            return client.post("/a2a/sales/message:send", json=params, headers=headers)
        body = {"jsonrpc": "2.0", "id": "deep-1", "method": "SendMessage", "params": params}
        return client.post("/a2a/sales", json=body, headers=headers)


def test_the_protocol_doors_refuse_it_in_their_own_protocol(setup: FlowSetup) -> None:
    token = setup.gateway.token("dana", USER_SCOPES)
    refused = _send(setup, token, _nested(300))
    assert refused.status_code == 200, refused.text
    assert refused.json()["id"] == "deep-1"
    assert refused.json()["error"]["code"] == -32600
    rest = _send(setup, token, _nested(100), rest=True)
    assert rest.status_code == 400, rest.text
    assert rest.json()["error"]["status"] == "INVALID_ARGUMENT"

    async def over_mcp() -> MCPError:
        async with mcp_client(setup.gateway.url + "/mcp", token, "2026-07-28") as client:
            with pytest.raises(MCPError) as error:
                await client.call_tool(
                    "inventory__check_stock", {"sku": "X-100", "quantity": 1, "x": _nested(90)}
                )
            return error.value

    assert anyio.run(over_mcp).error.code == -32600
    assert setup.desk.received == [], "a refused call reached the agent"


# Numbers JSON does not have, as Python's `json` reads them (1e999 as inf;
# an integer past a double's range cannot become a protobuf `Value`).
NON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400]


def _raw(client: httpx.Client, path: str, body: Any, number: str, **headers: str) -> httpx.Response:
    """``body`` posted with ``number`` written where it holds `NUMBER`, as it
    is: no client library writes such numbers. A header given as "" is left out."""
    text = json.dumps(body).replace(json.dumps(NUMBER), number)
    sent = {k: v for k, v in {"Content-Type": "application/json", **headers}.items() if v}
    return client.post(path, content=text.encode(), headers=sent)


NUMBER = "<number>"


def _message(method: str = "", legacy: bool = False) -> dict[str, Any]:
    part = {"kind": "data", "data": {"x": NUMBER}} if legacy else {"data": {"x": NUMBER}}
    message = {"messageId": "m-1", "role": "user" if legacy else "ROLE_USER", "parts": [part]}
    params = {"message": message, "metadata": {"skill": "quote"}}
    if not method:
        return params
    return {"jsonrpc": "2.0", "id": "nan-1", "method": method, "params": params}


TOOL_CALL = {
    "jsonrpc": "2.0",
    "id": 9,
    "method": "tools/call",
    "params": {
        "name": "inventory__check_stock",
        "arguments": {"sku": "X-100", "quantity": NUMBER},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    },
}
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "inventory__check_stock",
}


def test_a_number_json_does_not_have_is_refused_at_every_door(setup: FlowSetup) -> None:
    """Issue 57: NaN, the infinities and 1e999 were a 500 on the A2A door, an
    internal error (-32603) streamed, on 0.3 and on /mcp, passed on to an MCP
    upstream, and a run input shown as null whose step then never ended.
    Each door refuses them in its protocol, and nothing is called or stored."""
    token = setup.gateway.token("dana", USER_SCOPES)
    one = {"A2A-Version": "1.0"}
    with setup.admin() as admin:
        audited = len(admin.get("/audit", params={"kind": "all"}).json()["items"])
    with setup.gateway.client(token) as client:
        for number in NON_NUMBERS:
            for method, legacy, headers in (
                ("SendMessage", False, one),
                ("SendStreamingMessage", False, one),
                ("message/send", True, {}),
                ("message/stream", True, {}),
            ):
                body = _message(method, legacy)
                for kind in ("application/json", "text/plain"):  # the door reads both
                    refused = _raw(
                        client, "/a2a/sales", body, number, **headers, **{"Content-Type": kind}
                    )
                    assert refused.status_code == 200, (number, method, refused.text)
                    said = refused.json()
                    assert said["id"] == "nan-1", said
                    assert said["error"]["code"] == -32602, (number, method, said)
                    assert "not a JSON number" in said["error"]["message"]
            rest = _raw(client, "/a2a/sales/message:send", _message(), number, **one)
            assert rest.status_code == 400, (number, rest.text)
            assert rest.json()["error"]["status"] == "INVALID_ARGUMENT"
            mcp = _raw(client, "/mcp", TOOL_CALL, number, **MCP_HEADERS)
            assert mcp.status_code == 200, (number, mcp.text)
            assert mcp.json()["id"] == 9 and mcp.json()["error"]["code"] == -32602, mcp.text
            run = {"input": {**SMALL, "obj": {"x": NUMBER}}}
            # FastAPI reads a body with no content type as JSON.
            for headers in ({}, {"Content-Type": ""}):
                started = _raw(client, "/flows/quote-flow/runs", run, number, **headers)
                assert started.status_code == 400, (number, started.text)
                problem = started.json()
                assert problem["type"] == "urn:switchboard:problem:not-a-number", problem
        assert client.get("/flows/quote-flow/runs").json() == []
    assert setup.desk.received == [], "a refused call reached the agent"
    with setup.admin() as admin:
        after = admin.get("/audit", params={"kind": "all"}).json()["items"]
        assert len(after) == audited, after[: len(after) - audited]
        assert admin.get("/flows/quote-flow/runs").json() == []


def test_an_unreadable_task_does_not_break_list_tasks(setup: FlowSetup) -> None:
    token = setup.gateway.token("dana", USER_SCOPES)
    sent = _send(setup, token, {"sku": "X-100", "quantity": 2})
    assert sent.status_code == 200, sent.text
    task_id = sent.json()["result"]["task"]["id"]
    stored = {"id": task_id, "status": {"state": "TASK_STATE_COMPLETED"}, "metadata": _nested(150)}
    _write(setup, update(a2a_tasks).where(a2a_tasks.c.task_id == task_id).values(task=stored))
    with setup.gateway.client(token) as client:
        body = {"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {}}
        listed = client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})
    assert listed.status_code == 200, listed.text
    (task,) = listed.json()["result"]["tasks"]
    assert task["id"] == task_id
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["metadata"]["switchboard"]["unreadable"]


BAD_URLS = ["", "nope", "ftp://x/", "http://", "http://[::1", "http://a b/", "http://x:99999/"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_registration_naming_no_usable_url_is_422_and_stores_nothing(
    stores_nothing: FlowSetup, url: str
) -> None:
    with stores_nothing.admin() as admin:
        before = {
            route: admin.get(route).json()
            for route in ("/agents", "/mcp-servers", "/vendor-agents")
        }
        for route, body, field in (
            ("/agents", {"card_url": url}, "card_url"),
            ("/mcp-servers", {"name": "x", "url": url}, "url"),
            (
                "/vendor-agents",
                {
                    "id": "v",
                    "name": "V",
                    "upstream": {"type": "openai", "base_url": url, "model": "m"},
                    "skills": [{"id": "s", "name": "S"}],
                },
                "base_url",
            ),
        ):
            refused = admin.post(route, json=body)
            assert refused.status_code == 422, (route, url, refused.text)
            problem = refused.json()
            assert problem["type"] == "urn:switchboard:problem:invalid-request", problem
            assert any(e["field"].endswith(field) for e in problem["errors"]), problem
        for route, listed in before.items():
            assert admin.get(route).json() == listed
        assert admin.post("/mcp-servers", json={}).status_code == 422
